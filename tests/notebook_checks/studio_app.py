"""What notebooks/studio_app.ipynb must show once executed: the Studio, and its static view."""


def check(nb, text: str) -> None:
    bundle = nb.cells[-1].outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "original" in bundle["text/html"] and "gzipped B" in bundle["text/html"]
