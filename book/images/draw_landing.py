"""Draw the landing page's picture (book/images/edges-and-triangles.svg) with the book's style.

Run from the repository root: ``python book/images/draw_landing.py``.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from simplex_lib import diagrams, viz  # noqa: E402

fig, axes = viz.new_figure(2, width=6.0, height=2.4)
diagrams.edges_and_triangles(axes)
viz.finish(fig)
fig.savefig(Path(__file__).with_name("edges-and-triangles.svg"))
