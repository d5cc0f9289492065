"""What notebooks/09_sweeps.ipynb must show once executed (the figures its prose quotes).

Four pruned candidates and their int8 children; int8 variants make the front (int8 costs
nothing on this model) and 90 % after one epoch is where the accuracy breaks; a rerun gives
the same numbers; the grid keeps the pruned zeros; the search's variant is within one point
and smaller than uniform 50 % with int8. On Binder the candidates ran in the kernel.
"""

import re


def _cell(nb, needle: str):
    return next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def check(nb, text: str) -> None:
    original = float(re.search(r"original: accuracy ([\d.]+)%", text).group(1))

    sweep = _stdout(_cell(nb, "sw = wb.sweep(prune=[0.5, 0.7, 0.8, 0.9]"))
    assert re.search(r"8 variants in \d+ s \(kernel: 1 worker\(s\)\)", sweep), sweep
    rows = {m.group(1): (float(m.group(2)), int(m.group(3).replace(",", "")))
            for m in re.finditer(r"^(prune \d+%(?: > int8)?)\s+([\d.]+)%\s+[+-][\d.]+%\s+"
                                 r"([\d,]+)", sweep, re.M)}
    assert len(rows) == 8, rows
    for level in (50, 70, 80, 90):  # int8 costs at most a point; it quarters the file
        f, q = rows[f"prune {level}%"], rows[f"prune {level}% > int8"]
        assert abs(f[0] - q[0]) <= 1.0 and q[1] < f[1] / 2.4, (level, f, q)
    assert original - rows["prune 90%"][0] > 2.0  # where the accuracy breaks

    plot = _cell(nb, "sw.plot(axes)")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    front = re.search(r"on the front, smallest first: \[(.*)\]", _stdout(plot)).group(1)
    names = [n.strip(" '") for n in front.split(",")]
    # int8 makes the small end of the front; the most accurate point may be a float variant
    assert len(names) >= 2 and all(n.endswith("> int8") for n in names[:-1]), names
    assert "keras.utils.set_random_seed(0)" in text

    again = _stdout(_cell(nb, "again = wb.sweep("))
    runs = re.findall(r"run:\s+accuracy ([\d.]+), gzipped ([\d,]+) B", again)
    assert len(runs) == 2 and runs[0] == runs[1], again

    grid = _stdout(_cell(nb, "grid = wb.sweep("))
    sparsities = re.findall(r"sparsity (\d+)%", grid)
    assert len(sparsities) == 3 and len(set(sparsities)) == 1, grid  # the zeros are kept
    assert "prune 80%" in grid and "> cluster 8" in grid

    found = _stdout(_cell(nb, "best = wb.search("))
    m = re.search(r"best within one point: .*: accuracy ([\d.]+)% \(([+-][\d.]+)%\), gzipped "
                  r"([\d,]+) B", found)
    assert m and float(m.group(2)) >= -1.0, found
    half = int(re.search(r"uniform 50 % \(and int8\): ([\d,]+) B", found).group(1)
               .replace(",", ""))
    assert int(m.group(3).replace(",", "")) < half, found

    bundle = _cell(nb, "cw.SweepPanel(wb)").outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
