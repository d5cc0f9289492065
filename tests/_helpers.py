"""Small helpers shared by the tests."""

from __future__ import annotations

HOSTILE = "<img src=x onerror=alert(1)>"


def weights_bytes(model) -> list[bytes]:
    """The model's weights as raw bytes, to prove they are byte-identical."""
    return [w.numpy().tobytes() for w in model.weights]


def table_rows(markup: str) -> list[list[str]]:
    """The text of every cell of every <tr> in ``markup`` (header rows included), unescaped."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.rows: list[list[str]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(markup)
    return parser.rows


def op_input_types(blob: bytes, ops: tuple[str, ...] | None = None) -> dict[str, set[str]]:
    """For each op (of the types ``ops``, None: every op) of a .tflite: its output tensor's
    name -> the dtypes of its inputs (weights included), read back from the flatbuffer."""
    import numpy as np

    from compresswidgets import tflite as tfl

    it = tfl.interpreter(blob)  # not allocated: a delegate would replace the ops it takes
    tensors = it.get_tensor_details()
    return {tensors[op["outputs"][0]]["name"]: {np.dtype(tensors[i]["dtype"]).name
                                                 for i in op["inputs"] if i >= 0}
            for op in it._get_ops_details() if ops is None or op["op_name"] in ops}


def with_activation_outlier(model, layer: str, following: str, factor: float = 1000.0):
    """A copy of a tf_keras ``model`` computing the same function, whose ``layer`` (ReLU)
    has one unit ``factor`` times larger and ``following`` that unit's weights divided by
    it: ReLU(k·z) = k·ReLU(z), so the output is unchanged, but the layer's activation range
    is stretched by the one unit (an activation outlier)."""
    import tf_keras

    copy = tf_keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    w, b = copy.get_layer(layer).get_weights()
    w[..., 0] *= factor
    b[0] *= factor
    copy.get_layer(layer).set_weights([w, b])
    w, b = copy.get_layer(following).get_weights()
    w[0, :] /= factor
    copy.get_layer(following).set_weights([w, b])
    copy.compile(optimizer="adam", loss=model.loss, metrics=["accuracy"])
    return copy
