"""One technique a module, each with the same parts: validate, apply, code."""
