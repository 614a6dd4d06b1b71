"""Discovery probe (CUDA): where torch._cslt_compress puts each 2:4 group's metadata nibble.

For every group k of a rows x cols matrix, run b of ceil(log2(groups)) compressions keeps
positions (0, 1) if bit b of k is 0, else (2, 3); reading each metadata nibble over the runs
spells the group it describes. Saves {shape: int64 tensor [meta_words, 4] of group ids}.

    python -m tools.cslt_meta_map OUT.pt
"""
import math
import sys

import torch


def meta_map(rows, cols, dtype=torch.bfloat16):
    groups = rows * cols // 4
    nbits = max(1, math.ceil(math.log2(groups)))
    k = torch.arange(groups, device="cuda")
    acc = None
    nv = rows * cols // 2
    for b in range(nbits):
        bit = (k >> b) & 1  # 0 -> keep (0, 1); 1 -> keep (2, 3)
        g = torch.zeros(groups, 4, device="cuda", dtype=dtype)
        g[bit == 0, 0] = 1
        g[bit == 0, 1] = 2
        g[bit == 1, 2] = 3
        g[bit == 1, 3] = 4
        c = torch._cslt_compress(g.reshape(rows, cols)).reshape(-1)
        words = c[nv:].view(torch.int16).to(torch.int64) & 0xFFFF
        nibs = torch.stack([(words >> (4 * j)) & 15 for j in range(4)], -1)
        assert bool(((nibs == 4) | (nibs == 14)).all()), "unexpected nibble codes"
        bits = (nibs == 14).to(torch.int64) << b
        acc = bits if acc is None else acc + bits
    return acc.cpu()


def main(argv=None) -> None:
    path, = sys.argv[1:] if argv is None else argv
    out = {}
    for shape in [(128, 128), (256, 512), (384, 256), (128, 384)]:
        m = meta_map(*shape)
        uniq = m.flatten().unique().numel()
        print(shape, "words", m.shape[0], "distinct groups", uniq, "of", shape[0] * shape[1] // 4, flush=True)
        out[f"{shape[0]}x{shape[1]}"] = m
    torch.save(out, path)


if __name__ == "__main__":
    main()
