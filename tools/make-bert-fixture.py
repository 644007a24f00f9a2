#!/usr/bin/env python3
"""Build the tiny BERT-family sentence-encoder fixture and its PyTorch reference embeddings.

Writes, under --out (default test/fixtures/models/tiny-bert-st):
  config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt,
  onnx/model.onnx                           -- the layout transformers.js loads
  modules.json, 1_Pooling/config.json (CLS), 2_Normalize/, sentence_bert_config.json
  (max_seq_length), config_sentence_transformers.json (query/document prompts)
                                            -- the sentence-transformers configuration
and --refs (default test/fixtures/models/tiny-bert-st.reference.json): sentence embeddings
computed by sentence-transformers on the PyTorch model, for the shipped configuration and for
variants the tests create by editing the configuration (other pooling modes, no Normalize,
include_prompt false).

The weights are random (seeded). A random model is enough to prove that our loader runs the
model the way sentence-transformers does (tokenizer, token type ids, truncation, pooling,
prompts, normalisation); it says nothing about retrieval quality.

Run (no network: the machine's pip mirror has these):
  python3 -m venv /tmp/bert-venv
  /tmp/bert-venv/bin/pip install torch transformers tokenizers onnx sentence-transformers
  /tmp/bert-venv/bin/python tools/make-bert-fixture.py
"""
import argparse
import json
import os
import shutil
import tempfile

import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HIDDEN = 32
LAYERS = 2
HEADS = 4
MAX_POSITIONS = 128
MAX_SEQ_LENGTH = 48  # sentence_bert_config.json: shorter than the position table, as in real models
VOCAB = 1200
PROMPTS = {"query": "query: ", "document": "passage: "}

# Reference texts: short and long, punctuation, unknown characters, one far over MAX_SEQ_LENGTH.
TEXTS = [
    "How do I retry a failed job?",
    "Workers lease jobs from the queue and acknowledge them when done.",
    "A lighthouse keeper trims the lamp's wick every evening.",
    "HQ_RETENTION_HOURS sets how long finished jobs are kept.",
    "Ünïcödé text, emoji \U0001F680 and CJK 漢字 fall back to [UNK] pieces.",
    "x",
    " ".join(["The scheduler enqueues every missed run when catch-up is enabled and the server restarts"] * 20),
]

POOLING_VARIANTS = {
    "cls": {"pooling_mode_cls_token": True},
    "mean": {"pooling_mode_mean_tokens": True},
    "max": {"pooling_mode_max_tokens": True},
    "lasttoken": {"pooling_mode_lasttoken": True},
}


def training_text():
    """Word-piece training text: the bundled sample corpus (deterministic, in the repo)."""
    folder = os.path.join(ROOT, "corpus", "sample")
    out = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            out.append(f.read())
    return out


def pooling_config(mode, include_prompt=True):
    cfg = {
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": include_prompt,
    }
    cfg.update(POOLING_VARIANTS[mode])
    return cfg


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_st_config(folder, mode="cls", normalize=True, include_prompt=True):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(folder, "2_Normalize"), exist_ok=True)
    elif os.path.isdir(os.path.join(folder, "2_Normalize")):
        shutil.rmtree(os.path.join(folder, "2_Normalize"))
    write_json(os.path.join(folder, "modules.json"), modules)
    write_json(os.path.join(folder, "1_Pooling", "config.json"), pooling_config(mode, include_prompt))
    write_json(os.path.join(folder, "sentence_bert_config.json"), {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    write_json(
        os.path.join(folder, "config_sentence_transformers.json"),
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"},
    )


class Wrapper(torch.nn.Module):
    """transformers 5.x: call BertModel by keyword (positional arguments now hit use_cache)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "models", "tiny-bert-st"))
    ap.add_argument("--refs", default=os.path.join(ROOT, "test", "fixtures", "models", "tiny-bert-st.reference.json"))
    args = ap.parse_args()
    torch.manual_seed(14)

    work = tempfile.mkdtemp(prefix="bert-fixture-")
    try:
        # 1. WordPiece vocabulary ([PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then ## pieces).
        wp = BertWordPieceTokenizer(lowercase=True, strip_accents=True, clean_text=True)
        wp.train_from_iterator(training_text(), vocab_size=VOCAB, min_frequency=2,
                               special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], limit_alphabet=200)
        tok = BertTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True, model_max_length=MAX_POSITIONS)

        # 2. A random 2-layer BERT. A wider initialisation than BERT's 0.02 makes the output depend
        # strongly on the tokens, so texts are far apart and the 0.999 cosine check means something.
        config = BertConfig(vocab_size=tok.vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                            num_attention_heads=HEADS, intermediate_size=HIDDEN * 2, max_position_embeddings=MAX_POSITIONS,
                            type_vocab_size=2, initializer_range=0.5, pad_token_id=0)
        model = BertModel(config, add_pooling_layer=False).eval()
        # Token type 1 rows differ from 0, so a loader that drops or mangles token_type_ids is caught.
        st_dir = os.path.join(work, "st")
        model.save_pretrained(st_dir)
        tok.save_pretrained(st_dir)
        write_st_config(st_dir)

        # 3. ONNX export (fixed opset, TorchScript exporter) of input ids + mask + token types -> hidden states.
        out = args.out
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(os.path.join(out, "onnx"))
        ids = tok(["a b", "c"], padding=True, return_tensors="pt")
        torch.onnx.export(
            Wrapper(model), (ids["input_ids"], ids["attention_mask"], ids["token_type_ids"]),
            os.path.join(out, "onnx", "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
            opset_version=17, dynamo=False,
        )
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
            if os.path.exists(os.path.join(st_dir, name)):
                shutil.copy(os.path.join(st_dir, name), os.path.join(out, name))
        # transformers.js reads the tokenizer class from tokenizer_config.json.
        with open(os.path.join(out, "tokenizer_config.json"), encoding="utf-8") as f:
            tcfg = json.load(f)
        tcfg["tokenizer_class"] = "BertTokenizer"
        tcfg["model_max_length"] = MAX_POSITIONS
        write_json(os.path.join(out, "tokenizer_config.json"), tcfg)
        cfg = config.to_dict()
        cfg["architectures"] = ["BertModel"]
        cfg["transformers.js_config"] = {"dtype": "fp32"}
        for k in ["transformers_version", "torch_dtype", "dtype"]:
            cfg.pop(k, None)
        write_json(os.path.join(out, "config.json"), cfg)
        write_st_config(out)

        # 4. Reference embeddings from sentence-transformers itself, for each configuration variant.
        from sentence_transformers import SentenceTransformer

        def encode(mode="cls", normalize=True, include_prompt=True, prompt_name=None):
            write_st_config(st_dir, mode, normalize, include_prompt)
            st = SentenceTransformer(st_dir, device="cpu")
            assert st.max_seq_length == MAX_SEQ_LENGTH, st.max_seq_length
            kw = {"prompt_name": prompt_name} if prompt_name else {}
            return st.encode(TEXTS, convert_to_numpy=True, batch_size=4, **kw).astype(float).round(7).tolist()

        variants = {}
        for mode in POOLING_VARIANTS:
            variants[mode] = {"pooling": mode, "normalize": True, "include_prompt": True, "plain": encode(mode),
                              "query": encode(mode, prompt_name="query"), "document": encode(mode, prompt_name="document")}
        variants["cls-unnormalized"] = {"pooling": "cls", "normalize": False, "include_prompt": True, "plain": encode("cls", normalize=False)}
        variants["mean-exclude-prompt"] = {"pooling": "mean", "normalize": True, "include_prompt": False,
                                           "query": encode("mean", include_prompt=False, prompt_name="query")}
        tokens = [tok(t, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"] for t in TEXTS]
        write_json(args.refs, {
            "generator": "tools/make-bert-fixture.py",
            "model": os.path.basename(out),
            "max_seq_length": MAX_SEQ_LENGTH,
            "prompts": PROMPTS,
            "texts": TEXTS,
            "token_counts": [len(t) for t in tokens],
            "variants": variants,
        })
        print(f"wrote {out} and {args.refs}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
