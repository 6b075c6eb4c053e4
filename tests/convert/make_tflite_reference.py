"""Regenerate tflite_reference.json: what the TFLite interpreter itself says on the Coral pictures.

Not a test, and not run by the suite (the interpreter is no dependency of quicktune). Run it in a
separate environment that has the interpreter, e.g.

    python -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert pillow
    /tmp/litert/bin/python tests/convert/make_tflite_reference.py ../shared/weights/coral

For every model and picture it records the top-10 classes of the dequantised pre-softmax logits
(or of the embedding for the extractor). Input: the picture resized with PIL's bilinear filter to
the model's input size, as uint8 -- the test feeds the converted model the same pixels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

PICTURES = ("cat", "bird", "grace_hopper")


def main(coral_dir: Path) -> None:
    out: dict[str, dict[str, dict]] = {}
    for f in sorted(coral_dir.glob("*.tflite")):
        # Without the default (XNNPACK) delegate so intermediate tensors keep their indices.
        it = Interpreter(model_path=str(f), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        size = int(inp["shape"][1])
        last = it._get_ops_details()[-1]
        pre = int(last["inputs"][0]) if last["op_name"] == "SOFTMAX" else int(it.get_output_details()[0]["index"])
        detail = {d["index"]: d for d in it.get_tensor_details()}[pre]
        scale, zero = detail["quantization"]
        out[f.name] = {}
        for pic in PICTURES:
            img = Image.open(coral_dir / f"{pic}.bmp").convert("RGB").resize((size, size), Image.BILINEAR)
            it.set_tensor(inp["index"], np.asarray(img, dtype=np.uint8)[None])
            it.invoke()
            q = it.get_tensor(pre).astype(np.float64).reshape(-1)
            logits = (q - zero) * scale if scale else q
            top = np.argsort(-logits)[:10]
            out[f.name][pic] = {"input_size": size, "top10": [int(i) for i in top],
                                "values": [round(float(logits[i]), 4) for i in top]}
    dest = Path(__file__).with_name("tflite_reference.json")
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
