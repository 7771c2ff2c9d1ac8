"""Train the small intent-conditioned GPT-2 that synth's offline quickstart ships.

Reads:   data/intents/train.jsonl (and eval.jsonl for --eval)
Writes:  models/intents-gpt2/ (safetensors weights, tokenizer, generation_config.json,
         synth_model.json, README.md); with --fixture-tokenizer also tests/fixtures/tokenizer/

Everything runs on CPU and is seeded: the same command on the same library versions gives the
same weights. Usage (from the repository root):

    python scripts/train_intents_lm.py                 # tokenizer + model: ~4 min on 2 idle cores
    python scripts/train_intents_lm.py --eval          # ... then evaluate the saved model
    python scripts/train_intents_lm.py --eval-only     # evaluate models/intents-gpt2 as it is
    python scripts/train_intents_lm.py --fixture-tokenizer   # only the tiny test tokenizer
    python scripts/train_intents_lm.py --make-split data/intents/train.jsonl data/intents/eval.jsonl

Prompt formats (the generator in synth renders the same strings):
    label, 0-2 shots:  "Intent: {label}\\nExample: {ex1}\\nExample: {ex2}\\nExample:" + " {text}" + eos
    paraphrase:        "Paraphrase: {source_text}\\nIntent: {label}\\nExample:" + " {text}" + eos
Only the completion (" {text}" + eos) is scored by the loss; the prompt is masked with -100.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# On a busy 2-core machine, spinning OpenMP workers slow each step several-fold; sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data" / "intents"
MODEL_DIR = ROOT / "models" / "intents-gpt2"
FIXTURE_DIR = ROOT / "tests" / "fixtures" / "tokenizer"

SEED = 13
EOS = "<|endoftext|>"
LABELS = [
    "track_order",
    "cancel_order",
    "refund_request",
    "change_address",
    "payment_issue",
    "account_login",
    "product_question",
    "complaint",
]
PROMPT_FORMATS = {
    "label_0shot": "Intent: {label}\nExample:",
    "label_1shot": "Intent: {label}\nExample: {ex1}\nExample:",
    "label_2shot": "Intent: {label}\nExample: {ex1}\nExample: {ex2}\nExample:",
    "paraphrase": "Paraphrase: {source_text}\nIntent: {label}\nExample:",
    "completion": " {text}" + EOS,
}
HPARAMS = {
    "vocab_size": 2000,
    "n_layer": 4,
    "n_embd": 128,
    "n_head": 4,
    "n_positions": 256,
    "dropout": 0.1,
    "steps": 800,
    "batch_size": 32,
    "lr": 4e-3,
    "warmup": 50,
    "weight_decay": 0.05,
    "paraphrase_share": 0.25,
}
GENERATION = {"do_sample": True, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 40}

# A few sentences for the tiny test tokenizer (tests/fixtures/tokenizer); not the intents data.
FIXTURE_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A small model is trained on a handful of sentences for tests.",
    "Where is my order? It was supposed to arrive on Monday.",
    "Please cancel my order and refund the payment.",
    "Synthetic data is labelled, deduplicated and mixed with real data.",
    "Intent: track_order\nExample: where is my parcel",
    "Paraphrase: I forgot my password\nIntent: account_login\nExample:",
    "Images, text, labels, seeds, prompts and scores are stored in the manifest.",
    "One two three four five six seven eight nine ten 0123456789",
    "Hello, world! How are you today? I am fine, thank you.",
]


# ----------------------------------------------------------------------------- data helpers
def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def normalize(text: str) -> str:
    text = re.sub(r"[^\w\s]", "", text.lower())
    return re.sub(r"\s+", " ", text).strip()


def shingles(text: str, n: int = 5) -> set[str]:
    s = normalize(text)
    return {s[i : i + n] for i in range(max(1, len(s) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def make_split(rows: list[dict], seed: int = SEED, eval_share: float = 0.25, near: float = 0.5):
    """Stratified, seeded train/eval split that keeps near-duplicates on the same side.

    Rows are sorted by (label, text) first, so the result depends only on the set of rows:
    re-running on the pooled train + eval files reproduces the stored split.
    """
    rows = sorted(({"text": r["text"], "label": r["label"]} for r in rows), key=lambda r: (LABELS.index(r["label"]), r["text"]))
    texts = [r["text"] for r in rows]
    if len(set(texts)) != len(texts):
        raise SystemExit("make-split: exact duplicate texts in the input; remove them first")
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sh = [shingles(t) for t in texts]
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if jaccard(sh[i], sh[j]) >= near:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        groups[find(i)].append(i)
    order = sorted(groups.values())
    random.Random(seed).shuffle(order)
    per_label = defaultdict(int)
    for r in rows:
        per_label[r["label"]] += 1
    quota = {lab: round(n * eval_share) for lab, n in per_label.items()}
    is_eval = [False] * len(rows)
    for group in order:
        need = defaultdict(int)
        for i in group:
            need[rows[i]["label"]] += 1
        if all(quota[lab] >= k for lab, k in need.items()):
            for i in group:
                is_eval[i] = True
            for lab, k in need.items():
                quota[lab] -= k
    out = {"train": [], "eval": []}
    for i, r in enumerate(rows):
        out["eval" if is_eval[i] else "train"].append(r)
    for split, items in out.items():
        for k, r in enumerate(items, start=1):
            r_id = f"intents-{split}-{k:04d}"
            items[k - 1] = {"id": r_id, "text": r["text"], "label": r["label"]}
    return out["train"], out["eval"]


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        padding_side="left",
        model_max_length=max_length,
    )


def save_tokenizer(tokenizer, out_dir: Path) -> None:
    """save_pretrained, plus the two things transformers 5 leaves out for older readers."""
    tokenizer.save_pretrained(out_dir)
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # loads in transformers 4.x and 5.x
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    special = {"bos_token": EOS, "eos_token": EOS, "pad_token": EOS}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def build_fixture_tokenizer(out_dir: Path = FIXTURE_DIR, vocab_size: int = 400) -> None:
    tokenizer = train_tokenizer(FIXTURE_SENTENCES, vocab_size=vocab_size, max_length=512)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out_dir)
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"fixture tokenizer: vocab {len(tokenizer)} -> {out_dir} ({size / 1024:.1f} KB)")


# ----------------------------------------------------------------------------- prompts
def label_prompt(label: str, shots: list[str]) -> str:
    return "".join([f"Intent: {label}\n", *(f"Example: {s}\n" for s in shots), "Example:"])


def paraphrase_prompt(source_text: str, label: str) -> str:
    return PROMPT_FORMATS["paraphrase"].format(source_text=source_text, label=label)


def draw_training_pair(rng: random.Random, row: dict, by_label: dict[str, list[str]]):
    """One (prompt, completion) pair for `row`, in a randomly drawn format."""
    others = [t for t in by_label[row["label"]] if t != row["text"]]
    if rng.random() < HPARAMS["paraphrase_share"]:
        prompt = paraphrase_prompt(rng.choice(others), row["label"])
    else:
        prompt = label_prompt(row["label"], rng.sample(others, rng.randint(0, 2)))
    return prompt, " " + row["text"]


def encode_batch(tokenizer, pairs, max_len: int):
    import torch

    eos = tokenizer.eos_token_id
    seqs = []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos]
        ids, labels = (p + c)[-max_len:], ([-100] * len(p) + c)[-max_len:]
        seqs.append((ids, labels))
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), eos, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):  # right padding for training; positions start at 0
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return input_ids, mask, labels


# ----------------------------------------------------------------------------- training
def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(out_dir: Path = MODEL_DIR, steps: int | None = None) -> dict:
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(2)
    seed_everything(SEED)
    hp = dict(HPARAMS, steps=steps or HPARAMS["steps"])
    start, cpu_start = time.perf_counter(), time.process_time()

    train_path = DATA_DIR / "train.jsonl"
    rows = read_jsonl(train_path)
    by_label: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r["text"])
    # Tokenizer corpus: the train texts, plus the prompt keywords and label names (no eval text).
    corpus = [r["text"] for r in rows] + [label_prompt(lab, []) for lab in LABELS]
    corpus += [paraphrase_prompt("x", lab) for lab in LABELS]
    tokenizer = train_tokenizer(corpus, hp["vocab_size"], hp["n_positions"])

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=hp["n_positions"],
        n_embd=hp["n_embd"],
        n_layer=hp["n_layer"],
        n_head=hp["n_head"],
        resid_pdrop=hp["dropout"],
        embd_pdrop=hp["dropout"],
        attn_pdrop=hp["dropout"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp["lr"],
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < hp["warmup"]:
            return (step + 1) / hp["warmup"]
        progress = (step - hp["warmup"]) / max(1, hp["steps"] - hp["warmup"])
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = random.Random(SEED)
    queue: list[dict] = []
    pending: list = []
    model.train()
    running = None
    for step in range(hp["steps"]):
        if not pending:  # draw 8 batches at once, bucket them by length to cut padding
            pool = []
            while len(pool) < 8 * hp["batch_size"]:
                if not queue:  # one epoch = every train row once, in a fresh order
                    queue = rows[:]
                    rng.shuffle(queue)
                pool.append(draw_training_pair(rng, queue.pop(), by_label))
            pool.sort(key=lambda pair: len(pair[0]) + len(pair[1]))
            pending = [pool[i : i + hp["batch_size"]] for i in range(0, len(pool), hp["batch_size"])]
            rng.shuffle(pending)
        input_ids, mask, labels = encode_batch(tokenizer, pending.pop(), hp["n_positions"])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 100 == 0 or step == hp["steps"] - 1:
            print(
                f"step {step:5d}  loss {running:.3f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"{time.perf_counter() - start:.0f} s wall  {time.process_time() - cpu_start:.0f} s CPU",
                flush=True,
            )

    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        **GENERATION,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir)  # transformers 5 always writes safetensors
    save_tokenizer(tokenizer, out_dir)
    info = {
        "labels": LABELS,
        "prompt_formats": dict(PROMPT_FORMATS, stop=["\n", EOS], max_shots=2),
        "special_tokens": {name: {"token": EOS, "id": getattr(tokenizer, f"{name}_token_id")} for name in ("bos", "eos", "pad")},
        "training": {
            "command": "python scripts/train_intents_lm.py",
            "seed": SEED,
            "data": "data/intents/train.jsonl",
            "data_sha256": file_sha256(train_path),
            "n_train_texts": len(rows),
            "hparams": hp,
            "n_params": n_params,
            "final_loss": round(running, 4),
            "train_seconds": round(train_seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1),
            "torch_threads": 2,
            "versions": library_versions(),
        },
    }
    write_model_info(out_dir, info)
    print(f"training time: {train_seconds:.1f} s wall, {cpu_seconds:.1f} s CPU ({n_params:,} parameters, {hp['steps']} steps)")
    return info


def library_versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def write_model_info(out_dir: Path, info: dict) -> None:
    (out_dir / "synth_model.json").write_text(json.dumps(info, indent=2) + "\n")
    (out_dir / "README.md").write_text(render_card(info))


def render_card(info: dict) -> str:
    """The model card, rebuilt from synth_model.json so the two never disagree."""
    t, hp = info["training"], info["training"]["hparams"]
    ev = info.get("evaluation")
    fence = "```"
    lines = [
        "---",
        "license: mit",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [synth, gpt2, intents, synthetic-data, tiny]",
        "---",
        "",
        "# intents-gpt2",
        "",
        "A tiny GPT-2 trained from scratch, on CPU, to write short English customer-support",
        "requests for a given intent label. It is the text generator of synth's offline",
        "quickstart: small enough to ship in the repository, loaded through the same",
        "`from_pretrained` path as a Hub model. It is a demo model, not a general one: it knows",
        f"only the {t['n_train_texts']} training requests and their {len(info['labels'])} labels.",
        "",
        "## Architecture",
        "",
        f"`GPT2LMHeadModel`: {hp['n_layer']} layers, {hp['n_embd']} hidden, {hp['n_head']} heads, "
        f"{hp['n_positions']} positions, {t['n_params']:,} parameters (tied embeddings, float32). "
        f"Byte-level BPE tokenizer (`tokenizers`), vocabulary {hp['vocab_size']}, trained on the "
        "train split texts plus the prompt keywords and label names. "
        "`bos` = `eos` = `pad` = `<|endoftext|>` (id "
        f"{info['special_tokens']['eos']['id']}); `padding_side` is `left`.",
        "",
        "## Data",
        "",
        "`data/intents/train.jsonl` only (hand-written for the project, CC0-1.0; see "
        "`data/intents/README.md`). The eval split was never seen by the tokenizer or the model.",
        f"Labels: {', '.join(f'`{lab}`' for lab in info['labels'])}.",
        "",
        "## Prompt formats",
        "",
        'The completion is `" {text}"` followed by `<|endoftext|>`; cut generations at the',
        "first newline or eos. Only completion tokens are scored in training (prompt masked).",
        "",
        fence,
        '"Intent: {label}\\nExample:"                                  # 0 shots',
        '"Intent: {label}\\nExample: {ex1}\\nExample:"                 # 1 shot',
        '"Intent: {label}\\nExample: {ex1}\\nExample: {ex2}\\nExample:"  # 2 shots',
        '"Paraphrase: {source_text}\\nIntent: {label}\\nExample:"       # same intent, new words',
        '# completion: " {text}<|endoftext|>"',
        fence,
        "",
        f"Training draws, per example, the paraphrase format with probability "
        f"{hp['paraphrase_share']}, otherwise the label format with 0, 1 or 2 random same-label "
        "shots. `synth_model.json` holds the same strings (`prompt_formats`), the labels and "
        "the training record.",
        "",
        "## Training",
        "",
        fence + "bash",
        t["command"] + "            # add --eval for the numbers below",
        fence,
        "",
        f"Seed {t['seed']}, {hp['steps']} steps of batch {hp['batch_size']}, AdamW lr {hp['lr']} "
        f"(warmup {hp['warmup']}, cosine), dropout {hp['dropout']}, {t['torch_threads']} CPU threads: "
        f"{t['train_seconds']} s wall ({t['train_cpu_seconds']} s of CPU time; the wall time "
        "depends on what else the machine runs); final training loss "
        f"{t['final_loss']}. Versions: " + ", ".join(f"{k} {v}" for k, v in t["versions"].items()) + ".",
        "",
        "## Usage",
        "",
        fence + "python",
        "import torch",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tok = AutoTokenizer.from_pretrained("models/intents-gpt2")',
        'model = AutoModelForCausalLM.from_pretrained("models/intents-gpt2", use_safetensors=True)',
        'enc = tok(["Intent: refund_request\\nExample:"], return_tensors="pt")',
        "torch.manual_seed(0)",
        "out = model.generate(**enc)  # generation_config.json: sampling, T=0.9, top_p=0.95, 40 tokens",
        'print(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).split("\\n")[0])',
        fence,
        "",
    ]
    if ev:
        lines += [
            "## Evaluation",
            "",
            f"{ev['n_generated']} generations (2-shot label prompts, labels evenly spread), judged "
            f"by a classifier trained on the real train split ({ev['classifier']}), whose accuracy "
            f"on the real eval split is {ev['classifier_real_eval_accuracy']:.1%}.",
            "",
            "| metric | value |",
            "|---|---|",
            f"| share classified as the intended label | {ev['intended_label_share']:.1%} |",
            f"| exact copies of a train text | {ev['exact_train_copy_share']:.1%} |",
            f"| copies after lowercasing / punctuation removal | {ev['normalized_train_copy_share']:.1%} |",
            f"| distinct ratio | {ev['distinct_ratio']:.1%} |",
            "",
            "Copies of real train texts are expected from a model this small; synth's dedup step "
            "flags them (`dedup:near_copy_of_real`) rather than letting them pass as synthetic.",
            "",
        ]
    lines += ["## Licence", "", "MIT, like the synth project.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- evaluation
def generate_texts(model, tokenizer, prompts: list[str], seed: int, batch_size: int = 50):
    """Batched, left-padded sampling; torch.manual_seed(seed + batch index) per batch."""
    import torch

    tokenizer.padding_side = "left"
    outs = []
    for b in range(0, len(prompts), batch_size):
        chunk = prompts[b : b + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed + b // batch_size)
        with torch.no_grad():
            gen = model.generate(**enc, generation_config=model.generation_config)
        for row in gen[:, enc["input_ids"].shape[1] :]:
            text = tokenizer.decode(row, skip_special_tokens=True)
            outs.append(text.split("\n", 1)[0].strip())
    return outs


def evaluate(model_dir: Path = MODEL_DIR, n: int = 300, seed: int = SEED) -> dict:
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    train_rows, eval_rows = read_jsonl(DATA_DIR / "train.jsonl"), read_jsonl(DATA_DIR / "eval.jsonl")
    clf = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=10.0, max_iter=3000),
    )
    clf.fit([r["text"] for r in train_rows], [r["label"] for r in train_rows])
    real_acc = float((clf.predict([r["text"] for r in eval_rows]) == [r["label"] for r in eval_rows]).mean())

    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_label: dict[str, list[str]] = defaultdict(list)
    for r in train_rows:
        by_label[r["label"]].append(r["text"])
    rng = random.Random(seed)
    intended = [LABELS[i % len(LABELS)] for i in range(n)]  # evenly spread, interleaved
    prompts = [label_prompt(lab, rng.sample(by_label[lab], 2)) for lab in intended]
    t0 = time.perf_counter()
    texts = generate_texts(model, tokenizer, prompts, seed)
    gen_seconds = time.perf_counter() - t0
    pred = clf.predict(texts)
    train_texts = {r["text"] for r in train_rows}
    train_norm = {normalize(t) for t in train_texts}
    per_label = {lab: round(float(sum(p == lab for p, i in zip(pred, intended) if i == lab) / intended.count(lab)), 3) for lab in LABELS}
    result = {
        "n_generated": n,
        "classifier": "tfidf word(1-2)+char_wb(2-5) + LogisticRegression(C=10)",
        "classifier_real_eval_accuracy": round(real_acc, 4),
        "intended_label_share": round(float((pred == intended).mean()), 4),
        "intended_label_share_per_label": per_label,
        "exact_train_copy_share": round(sum(t in train_texts for t in texts) / n, 4),
        "normalized_train_copy_share": round(sum(normalize(t) in train_norm for t in texts) / n, 4),
        "distinct_ratio": round(len(set(texts)) / n, 4),
        "empty": sum(not t for t in texts),
        "generation_seconds": round(gen_seconds, 1),
        "prompt": "label_2shot, shots drawn with random.Random(13) from the train split",
        "samples": {lab: [t for t, i in zip(texts, intended) if i == lab][:5] for lab in LABELS},
    }
    info_path = model_dir / "synth_model.json"
    info = json.loads(info_path.read_text())
    info["evaluation"] = result
    write_model_info(model_dir, info)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    for lab, samples in result["samples"].items():
        print(f"[{lab}]")
        for s in samples:
            print(f"   {s}")
    return result


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", action="store_true", help="evaluate after training")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the saved model only")
    ap.add_argument("--steps", type=int, default=None, help="override the number of steps")
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--fixture-tokenizer", action="store_true", help="write only the tiny test tokenizer to tests/fixtures/tokenizer")
    ap.add_argument("--make-split", nargs="+", type=Path, metavar="JSONL", help="(re)make data/intents/{train,eval}.jsonl from these rows")
    args = ap.parse_args(argv)
    if args.make_split:
        rows = [r for p in args.make_split for r in read_jsonl(p)]
        train_rows, eval_rows = make_split(rows)
        write_jsonl(DATA_DIR / "train.jsonl", train_rows)
        write_jsonl(DATA_DIR / "eval.jsonl", eval_rows)
        print(f"split: {len(train_rows)} train, {len(eval_rows)} eval")
        return 0
    if args.fixture_tokenizer:
        build_fixture_tokenizer()
        return 0
    if not args.eval_only:
        train(args.out, args.steps)
    if args.eval or args.eval_only:
        evaluate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
