"""The byte-level BPE tokenizer (1024 ids) of the shipped pairs (assets/pretrained/).

Trained on git's release notes as Debian installs them (/usr/share/doc/git/RelNotes,
GPL-2.0, English), files in sorted order, so the same machine gives the same file.
Byte-level: every UTF-8 text encodes (no unknown token), and ids 0..255 are the 256
byte symbols, the rest merges.

    pip install tokenizers==0.23.3
    python scripts/pairs/make_tokenizer.py --out assets/pretrained/tokenizer.json
"""

import argparse
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/usr/share/doc/git/RelNotes")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    files = sorted(str(p) for p in pathlib.Path(args.corpus).glob("*.txt"))
    if not files:
        raise SystemExit(f"{args.corpus}: no .txt files")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(files, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    tok.save(args.out)
    sample = "The pass key is 71432. Kunci sandi adalah 71432."
    ids = tok.encode(sample).ids
    assert tok.decode(ids) == sample
    print(f"{args.out}: {VOCAB} ids from {len(files)} files; {len(sample)} chars -> {len(ids)} tokens")


if __name__ == "__main__":
    main()
