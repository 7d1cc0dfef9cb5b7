"""The ipywidgets plumbing shared by the book's explorers: controls in, state and picture out.

Every explorer is a plain state function (tested as data, without a browser) plus a render
function that draws the state on a matplotlib figure. :class:`Explorer` wires the two to a dict of
ipywidgets controls: any control change recomputes the state and redraws the figure into a PNG
image widget, which keeps its picture when the page is rendered statically. A subclass supplies
only its controls, their layout, the call to its state function, its render function and the
picture's size.
"""

from __future__ import annotations

import io

__all__ = ["figure_png", "Explorer"]


def figure_png(fig, dpi: int) -> bytes:
    """The PNG bytes of a matplotlib figure, as drawn (no extra tight-bounding-box pass).

    The book's style saves with ``bbox_inches="tight"``; the explorers' render functions already
    call ``tight_layout``, so this skips the second layout pass that would cost a redraw.

    Parameters
    ----------
    fig : matplotlib Figure
    dpi : int, pixels per inch of the picture

    Returns
    -------
    bytes, a PNG file of ``figsize * dpi`` pixels.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> png = figure_png(Figure(figsize=(2, 1)), dpi=10)
    >>> png[:4]
    b'\\x89PNG'
    """
    import matplotlib as mpl

    buf = io.BytesIO()
    with mpl.rc_context({"savefig.bbox": "standard"}):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class Explorer:
    """Base class of the explorers: a dict of controls, a state function and a PNG picture.

    Any change of a control calls :meth:`update`, which passes :meth:`values` to the subclass's
    state function (its ``_compute`` method), keeps the result in ``state`` and, when
    ``draw`` is true, redraws it with the subclass's ``_render`` function on one reused
    matplotlib ``Figure`` (not a pyplot figure, so a notebook never shows it a second time)
    into ``image``, a PNG ``ipywidgets.Image``.

    A subclass builds its controls, then calls ``super().__init__`` and sets:

    - ``_compute(self, values) -> dict``: calls its pure state function;
    - ``_render``: a function ``(state, fig) -> fig`` that draws the state on ``fig``;
    - ``figsize`` (inches) and ``dpi``: the picture's size;
    - ``clamp`` (optional): ``{length control: index control}``; when the length control moves,
      the index control's maximum follows it (``length - 1``) without a second redraw.

    Parameters
    ----------
    controls : dict of str -> ipywidgets widget
        The controls, by name (the names of :meth:`values`'s keys).
    rows : list
        Layout above the picture: each row is a list of control names (shown side by side) or a
        widget shown as it is (e.g. a text panel).
    draw : bool
        Redraw the picture on every change (``False`` only recomputes ``state``: for tests
        and batch use; set ``draw`` back to ``True`` to resume drawing).

    Attributes
    ----------
    controls : dict of the controls
    state : dict, the state function's latest result (``None`` before the first update)
    image : ipywidgets.Image showing the latest picture (PNG bytes in ``image.value``)
    widget : ipywidgets.VBox with the control rows and the image; displaying the explorer shows it
    draw : bool

    Examples
    --------
    A toy explorer: one slider, its square as the state, a bar as the picture.

    >>> import ipywidgets as w
    >>> class Square(Explorer):
    ...     figsize, dpi = (2.0, 1.5), 30
    ...     def __init__(self, x=2):
    ...         super().__init__({"x": w.IntSlider(value=x, max=9)}, [["x"]])
    ...     def _compute(self, values):
    ...         return {"x": values["x"], "square": values["x"] ** 2}
    ...     @staticmethod
    ...     def _render(state, fig):
    ...         fig.clf()
    ...         fig.subplots().bar([0], [state["square"]])
    ...         return fig
    >>> ex = Square()
    >>> ex.controls["x"].value = 3
    >>> ex.state["square"], bytes(ex.image.value[:4])
    (9, b'\\x89PNG')
    >>> ex.close()
    """

    #: Size of the picture in inches (width, height).
    figsize: tuple = (8.0, 4.0)
    #: Pixels per inch of the PNG picture.
    dpi: int = 80
    #: ``{length control: index control}`` pairs kept consistent (index max = length - 1).
    clamp: dict = {}

    def __init__(self, controls: dict, rows: list, *, draw: bool = True):
        import ipywidgets as w

        self.controls = controls
        self.draw = draw
        self.state = None
        self.image = w.Image(format="png")
        self._fig = None
        self._holding = False
        for c in controls.values():
            c.observe(self._on_change, names="value")
        boxes = [w.HBox([controls[name] for name in row]) if isinstance(row, (list, tuple)) else row
                 for row in rows]
        self.widget = w.VBox([*boxes, self.image])
        self.update()

    def _compute(self, values: dict) -> dict:
        raise NotImplementedError("an Explorer subclass defines _compute(values) -> state")

    def _render(self, state: dict, fig):
        raise NotImplementedError("an Explorer subclass defines _render(state, fig) -> fig")

    def _on_change(self, change):
        if self._holding:
            return
        for length, index in self.clamp.items():
            if change["owner"] is self.controls[length]:
                self._holding = True  # clamping the index must not trigger a second redraw
                try:
                    self.controls[index].max = change["new"] - 1  # also clamps its value
                finally:
                    self._holding = False
        self.update()

    def values(self) -> dict:
        """The current control values, by control name."""
        return {name: c.value for name, c in self.controls.items()}

    def update(self) -> dict:
        """Recompute the state from the controls (and redraw when drawing); returns the state."""
        self.state = self._compute(self.values())
        if self.draw:
            from matplotlib.figure import Figure

            from ..viz import use_style

            use_style()
            if self._fig is None:
                self._fig = Figure(figsize=self.figsize)
            self._render(self.state, self._fig)
            self.image.value = figure_png(self._fig, self.dpi)
        return self.state

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def close(self):
        """Close the widgets and drop the figure (it is not registered with pyplot)."""
        self._fig = None
        self.widget.close()
