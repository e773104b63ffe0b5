"""CLIP's byte-level BPE tokenizer.

The vocabulary ``bpe_simple_vocab_16e6.txt.gz`` beside this file is data
published with OpenAI's CLIP under the MIT licence (it is also shipped in the
``clip-anytorch`` and ``open-clip-torch`` wheels); the code here is ours and
produces the same ids.
"""
import gzip
import html
import os
from functools import lru_cache

import ftfy
import regex as re


@lru_cache
def default_bpe():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_simple_vocab_16e6.txt.gz")


@lru_cache
def bytes_to_unicode():
    """A reversible map from the 256 byte values to printable unicode characters.

    Printable Latin-1 bytes map to themselves; the others are moved to code
    points from 256 upwards, in byte order, so BPE never sees whitespace or
    control characters.
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    # Insertion order matters: it is the order of the first 256 vocabulary ids.
    mapping = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in mapping]
    for shift, b in enumerate(others):
        mapping[b] = chr(256 + shift)
    return mapping


def get_pairs(word):
    """The set of adjacent symbol pairs of a word (a tuple of symbols)."""
    return set(zip(word[:-1], word[1:]))


def basic_clean(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))  # doubly escaped entities too
    return text.strip()


def whitespace_clean(text):
    return re.sub(r"\s+", " ", text).strip()


def _merge_pair(word, first, second):
    """Replace every non-overlapping (first, second) in ``word``, left to right."""
    merged = []
    i = 0
    while i < len(word):
        if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return tuple(merged)


class SimpleTokenizer:
    START = "<|startoftext|>"
    END = "<|endoftext|>"

    def __init__(self, bpe_path: str = default_bpe()):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        with gzip.open(bpe_path) as f:
            lines = f.read().decode("utf-8").split("\n")
        # Line 0 is a header; the vocabulary has 49152 - 256 - 2 merges.
        merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
        byte_symbols = list(self.byte_encoder.values())
        vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
        vocab += ["".join(merge) for merge in merges]
        vocab += [self.START, self.END]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.bpe_ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.cache = {self.START: self.START, self.END: self.END}
        self.pat = re.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            re.IGNORECASE,
        )

    def bpe(self, token):
        """Space-separated BPE symbols of one pre-token; the last carries ``</w>``."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            # Merge the pair with the lowest rank first, as the vocabulary was learnt.
            best = min(get_pairs(word), key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            word = _merge_pair(word, *best)
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text):
        tokens = []
        text = whitespace_clean(basic_clean(text)).lower()
        for piece in re.findall(self.pat, text):
            piece = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            tokens.extend(self.encoder[symbol] for symbol in self.bpe(piece).split(" "))
        return tokens

    def decode(self, tokens):
        text = "".join(self.decoder[token] for token in tokens)
        raw = bytearray(self.byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ")
