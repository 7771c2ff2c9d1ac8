import json


def _jsonl(tmp_path):
    p = tmp_path / "texts.jsonl"
    p.write_text("\n".join(json.dumps({"text": f"sample text number {i}", "label": "ab"[i % 2]}) for i in range(8)) + "\n")
    return {"path": str(p), "eval_fraction": 0.25}


def _folder(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 100 if label == "cat" else 200, 0)).save(tmp_path / "imgs" / label / f"{i}.png")
    return {"path": str(tmp_path / "imgs")}


def _hf(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"text": ["a b c", "d e f", "g h i", "j k l"], "label": [0, 1, 0, 1]},
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}),
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    return {"path": str(tmp_path / "hf"), "text_column": "text"}


EXAMPLES = {
    "digits": lambda tmp_path: {"max_per_label": 2},
    "text_file": _jsonl,
    "image_folder": _folder,
    "hf_dataset": _hf,
}
