#!/usr/bin/env python3
"""Paillier / Okamoto-Uchiyama operations per second: Fedra vs python-paillier vs HEU.

Runs the same operations, at the same modulus sizes and on the same 64-bit random
plaintexts, with

* ``fedra``: ``target/release/fedra bench he`` (optional, ``--fedra BIN``),
* ``phe``: python-paillier 1.5 with gmpy2 (Paillier only),
* ``heu``: SecretFlow HEU (``sf-heu``; schemes ZPaillier, FPaillier, OU) through its
  ``heu.numpy`` array API, i.e. C++ loops over whole arrays without per-operation
  Python calls (keygen and ``add_acc`` go through ``heu.phe``),

prints one JSON line per (impl, scheme, bits, threads, op) with the keys of
``fedra bench he`` and ends with a comparison table.

Threads: for phe (which holds the GIL), ``--threads 2`` runs the single-threaded
measurement in 2 processes at the same time (synchronised per operation with a barrier)
and adds their throughputs. HEU's array operations run on its own thread pool: they
are measured in one process with ``YACL_NUM_THREADS`` set to the thread count
(``YACL_NUM_THREADS=1`` for the single-thread, per-core numbers), except ``keygen``
(``setup`` is sequential), which runs in that many processes like phe. The JSON lines
say which (``"parallelism": "processes"`` or ``"yacl_threads"``).

Operations (same definitions as ``fedra bench he``):

* ``keygen``: ``phe.generate_paillier_keypair(n_length=bits)``; ``heu.phe.setup(schema,
  bits)``, which also builds HEU's fixed-base tables (compare with Fedra's
  ``keygen_tables``).
* ``encrypt``: public-key encryption of uniform random signed 64-bit integers
  (phe: ``pk.encrypt(m)``, textbook ``r^n``; HEU: ``Encryptor.encrypt(PlaintextArray)``).
* ``decrypt``: phe ``sk.decrypt``; HEU ``Decryptor.decrypt(CiphertextArray)``.
* ``add``: ciphertext + ciphertext (phe ``a + b``; HEU ``Evaluator.add`` of two
  arrays).
* ``add_acc``: many ciphertexts summed into one (HEU ``Evaluator.sum`` of an array,
  one addition per element; phe has no accumulator API and is not measured).
* ``add_plain``: ciphertext + plaintext (phe ``a + m``; HEU ``add(CiphertextArray,
  PlaintextArray)``).
* ``scalar_mul``: ciphertext x random signed 64-bit scalar (phe ``a * k``; HEU
  ``mul(CiphertextArray, PlaintextArray)``).
* ``rerandomize``: phe ``EncryptedNumber.obfuscate()``. HEU's Python API exposes no
  rerandomisation, so HEU has no number for it.

Usage: ``bench/he_compare.sh`` (builds ``fedra`` and runs everything), or
``python3 bench/he_compare.py --fedra target/release/fedra --out he.jsonl``;
``python3 bench/he_compare.py --table he.jsonl`` re-prints the table of a saved run.
"""

import argparse
import json
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import time
import traceback

POOL = 64
OPS = ["keygen", "encrypt", "decrypt", "add", "add_acc", "add_plain", "scalar_mul", "rerandomize"]
HEU_SCHEMES = {"zpaillier": "ZPaillier", "fpaillier": "FPaillier", "ou": "OU"}
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def rand_i64(count):
    return [secrets.randbits(64) + I64_MIN for _ in range(count)]


LINES = []  # every line emitted by this process, for the final table


def emit(line, out):
    LINES.append(line)
    text = json.dumps(line, sort_keys=True)
    print(text, flush=True)
    if out is not None:
        out.write(text + "\n")
        out.flush()


def load():
    return [round(x, 2) for x in os.getloadavg()]


class Timer:
    """Calibrates a batch size (warm-up, not counted), waits at the barrier, then runs
    the same prepared batch until `seconds` of wall time have passed."""

    def __init__(self, seconds, barrier):
        self.seconds = seconds
        self.barrier = barrier

    def measure(self, prep, run, start=2):
        target = max(self.seconds / 10.0, 0.02)
        size = start
        while True:
            inp = prep(size)
            t0 = time.perf_counter()
            run(inp)
            t = time.perf_counter() - t0
            if t >= target or size >= 1 << 22:
                break
            grow = target / t * 1.2 if t > 0 else 16.0
            size = int(size * min(max(grow, 2.0), 16.0)) + 1
        self.barrier.wait()
        n, wall = 0, 0.0
        c0 = time.process_time()
        while wall < self.seconds:
            t0 = time.perf_counter()
            n += run(inp)
            wall += time.perf_counter() - t0
        return n, wall, time.process_time() - c0

    def keygen(self, gen, min_n):
        self.barrier.wait()
        n, wall = 0, 0.0
        c0 = time.process_time()
        while wall < self.seconds or n < min_n:
            t0 = time.perf_counter()
            gen()
            wall += time.perf_counter() - t0
            n += 1
        return n, wall, time.process_time() - c0


# ---------------------------------------------------------------- python-paillier


def phe_ops(bits, timer, keygen_min, ops):
    import phe
    from phe import util

    assert util.HAVE_GMP, "python-paillier is not using gmpy2"
    pk, sk = phe.generate_paillier_keypair(n_length=bits)
    ms = rand_i64(POOL)
    cts = [pk.encrypt(m) for m in ms]
    a, b = ms[0], ms[1]
    # Self-check with the same op definitions as below.
    assert sk.decrypt(cts[0]) == a
    assert sk.decrypt(cts[0] + cts[1]) == a + b
    assert sk.decrypt(cts[0] + b) == a + b
    assert sk.decrypt(cts[0] * b) == a * b
    c = pk.encrypt(a)
    before = c.ciphertext(be_secure=False)
    c.obfuscate()
    assert c.ciphertext(be_secure=False) != before and sk.decrypt(c) == a

    def cyc(k, off=0):
        return [cts[(i + off) % POOL] for i in range(k)]

    def run_list(f):
        def run(inp):
            for x in inp:
                f(x)
            return len(inp)

        return run

    def run_pairs(f):
        def run(inp):
            for x, y in zip(*inp):
                f(x, y)
            return len(inp[0])

        return run

    def obfuscate(c):
        c.obfuscate()

    for op in ops:
        if op == "keygen":
            yield op, timer.keygen(lambda: phe.generate_paillier_keypair(n_length=bits), keygen_min)
        elif op == "encrypt":
            yield op, timer.measure(rand_i64, run_list(pk.encrypt))
        elif op == "decrypt":
            yield op, timer.measure(cyc, run_list(sk.decrypt))
        elif op == "add":
            yield op, timer.measure(lambda k: (cyc(k), cyc(k, 1)), run_pairs(lambda x, y: x + y))
        elif op == "add_plain":
            yield op, timer.measure(lambda k: (cyc(k), rand_i64(k)), run_pairs(lambda x, y: x + y))
        elif op == "scalar_mul":
            yield op, timer.measure(lambda k: (cyc(k), rand_i64(k)), run_pairs(lambda x, y: x * y))
        elif op == "rerandomize":
            # obfuscate() works in place: copies so that the pool stays untouched.
            yield op, timer.measure(
                lambda k: [phe.EncryptedNumber(pk, c.ciphertext(False), c.exponent) for c in cyc(k)],
                run_list(obfuscate),
            )


# ---------------------------------------------------------------- HEU


def heu_ops(schema_name, bits, timer, keygen_min, ops):
    import numpy as np
    from heu import numpy as hnp
    from heu import phe as hphe

    schema = getattr(hphe.SchemaType, HEU_SCHEMES[schema_name])
    kit = hnp.setup(schema, bits)
    enc = kit.integer_encoder(scale=1)
    encryptor, decryptor, ev = kit.encryptor(), kit.decryptor(), kit.evaluator()
    ms = rand_i64(POOL)
    ms_arr = kit.array(np.array(ms, dtype=np.int64), enc)
    pool = encryptor.encrypt(ms_arr)
    # Scalar API for add_acc (in-place accumulation) and the self-check.
    pev = ev.phe
    pkit_ct = [pool[i] for i in range(POOL)]

    def dec1(c):
        return int(decryptor.decrypt(c))

    a, b = ms[0], ms[1]
    assert dec1(pkit_ct[0]) == a
    assert dec1(pev.add(pkit_ct[0], pkit_ct[1])) == a + b
    assert dec1(pev.add(pkit_ct[0], kit.plaintext(b))) == a + b
    assert dec1(pev.mul(pkit_ct[0], b)) == a * b
    two = kit.array(np.array([a, b], dtype=np.int64), enc)
    prod = decryptor.decrypt(ev.mul(pool[[0, 1]], two))
    assert [int(prod[i]) for i in range(2)] == [a * a, b * b]
    assert int(decryptor.decrypt(ev.sum(pool[[0, 1]]))) == a + b

    def cyc(k, off=0):
        return pool[[(i + off) % POOL for i in range(k)]]

    def parr(k):
        return kit.array(np.array(rand_i64(k), dtype=np.int64), enc)

    def size_of(arr):
        return arr.shape[0]

    for op in ops:
        if op == "keygen":
            yield op, timer.keygen(lambda: hphe.setup(schema, bits), keygen_min)
        elif op == "encrypt":
            yield op, timer.measure(parr, lambda p: size_of(encryptor.encrypt(p)))
        elif op == "decrypt":
            yield op, timer.measure(cyc, lambda c: size_of(decryptor.decrypt(c)))
        elif op == "add":
            yield op, timer.measure(lambda k: (cyc(k), cyc(k, 1)), lambda x: size_of(ev.add(*x)))
        elif op == "add_acc":
            yield op, timer.measure(cyc, lambda c: (ev.sum(c), size_of(c))[1])
        elif op == "add_plain":
            yield op, timer.measure(lambda k: (cyc(k), parr(k)), lambda x: size_of(ev.add(*x)))
        elif op == "scalar_mul":
            yield op, timer.measure(lambda k: (cyc(k), parr(k)), lambda x: size_of(ev.mul(*x)))


# ---------------------------------------------------------------- processes


def worker(impl, scheme, bits, seconds, keygen_min, ops, barrier, queue):
    try:
        timer = Timer(seconds, barrier)
        gen = phe_ops(bits, timer, keygen_min, ops) if impl == "phe" else heu_ops(scheme, bits, timer, keygen_min, ops)
        for op, res in gen:
            queue.put((op, res))
        queue.put(("done", None))
    except BaseException as e:  # report instead of hanging the barrier
        barrier.abort()
        queue.put(("error", f"{type(e).__name__}: {e} at {traceback.format_exc(limit=-1).strip()}"))


def run_python(impl, scheme, bits, threads, args, out):
    ops = [o for o in OPS if (not args.ops or o in args.ops)]
    if impl == "phe":
        run_procs(impl, scheme, bits, threads, threads, 1, [o for o in ops if o != "add_acc"], args, out)
    else:
        ops = [o for o in ops if o != "rerandomize"]
        if "keygen" in ops:
            run_procs(impl, scheme, bits, threads, threads, 1, ["keygen"], args, out)
        rest = [o for o in ops if o != "keygen"]
        if rest:
            run_procs(impl, scheme, bits, threads, 1, threads, rest, args, out)


def run_procs(impl, scheme, bits, threads, nprocs, yacl_threads, ops, args, out):
    """Runs `ops` in `nprocs` processes with YACL_NUM_THREADS=`yacl_threads` each."""
    os.environ["YACL_NUM_THREADS"] = str(yacl_threads)
    parallelism = "processes" if nprocs > 1 else "yacl_threads" if yacl_threads > 1 else "single"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(nprocs)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(impl, scheme, bits, args.seconds, args.keygen_min, ops, barrier, queue))
        for _ in range(nprocs)
    ]
    for p in procs:
        p.start()
    results, done, errors = {}, 0, []
    while done < nprocs:
        op, res = queue.get()
        if op == "done":
            done += 1
        elif op == "error":
            errors.append(res)
            done += 1
        else:
            results.setdefault(op, []).append(res)
            if len(results[op]) == nprocs:
                n = sum(r[0] for r in results[op])
                cpu = sum(r[2] for r in results[op])
                emit(
                    {
                        "bench": "he",
                        "impl": impl,
                        "scheme": scheme,
                        "bits": bits,
                        "threads": threads,
                        "op": op,
                        "ops_per_s": sum(r[0] / r[1] for r in results[op]),
                        "n": n,
                        "wall_s": max(r[1] for r in results[op]),
                        "cpu_s": cpu,
                        "ops_per_cpu_s": n / cpu if cpu > 0 else None,
                        "parallelism": parallelism,
                    },
                    out,
                )
    for p in procs:
        p.join()
    if errors:
        emit({"bench": "he", "impl": impl, "scheme": scheme, "bits": bits, "threads": threads, "error": errors[0]}, out)


def run_fedra(binary, args, out):
    cmd = [
        binary, "bench", "he",
        "--bits", ",".join(map(str, args.bits)),
        "--threads", ",".join(map(str, args.threads)),
        "--seconds", str(args.seconds),
        "--keygen-min", str(args.keygen_min),
    ]
    if args.ops:
        fedra_ops = set(args.ops) | ({"keygen_tables"} if "keygen" in args.ops else set())
        fedra_ops |= {"encrypt_crt"} if "encrypt" in args.ops else set()
        cmd += ["--ops", ",".join(sorted(fedra_ops))]
    print("# " + " ".join(cmd), file=sys.stderr, flush=True)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            line = line.strip()
            if line.startswith("{"):
                emit(json.loads(line), out)
    if p.returncode != 0:
        raise SystemExit(f"{binary} exited with {p.returncode}")


# ---------------------------------------------------------------- table


def fmt(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def table(lines, metric):
    """Markdown table. Per-core columns: threads=1, `metric` (ops_per_cpu_s or
    ops_per_s); the last columns: 2-thread wall-time throughputs."""
    rows = {}
    for l in lines:
        if l.get("bench") != "he" or "op" not in l:
            continue
        rows[(l["impl"], l["scheme"], l["bits"], l["threads"], l["op"])] = l

    def get(impl, scheme, bits, threads, op, key):
        l = rows.get((impl, scheme, bits, threads, op))
        return None if l is None else l.get(key)

    def ratio(a, b):
        return f"{a / b:.2f}×" if a and b else "–"

    bits_all = sorted({k[2] for k in rows})
    out = []
    fam = [
        ("Paillier", "paillier", [("phe", "paillier"), ("heu", "zpaillier"), ("heu", "fpaillier")]),
        ("OU", "ou", [("heu", "ou")]),
    ]
    fops = ["keygen", "keygen_tables", "encrypt", "encrypt_crt", "decrypt", "add", "add_acc", "add_plain", "scalar_mul", "rerandomize"]
    # Which Python op a Fedra op is compared with.
    peer = {"keygen_tables": "keygen", "encrypt_crt": "encrypt"}
    for title, fscheme, peers in fam:
        for bits in bits_all:
            if not any(k[1] == fscheme and k[2] == bits for k in rows) and not any(
                (k[0], k[1]) in peers and k[2] == bits for k in rows
            ):
                continue
            names = [f"{i} {s}" if i == "heu" else i for i, s in peers]
            out.append(f"\n**{title}, {bits} bits** — 1 thread, {'ops per CPU-second' if metric == 'ops_per_cpu_s' else 'ops/s (wall)'}; "
                       "last columns: 2 threads, ops/s (wall)\n")
            ratios = [(names.index(n), f"fedra / {n}") for n in names if n != "heu fpaillier"]
            hdr = ["op", "fedra"] + names + [r for _, r in ratios]
            hdr += ["fedra 2T"] + [f"{n} 2T" for n in names]
            out.append("| " + " | ".join(hdr) + " |")
            out.append("|" + "---|" * len(hdr))
            for op in fops:
                pop = peer.get(op, op)
                f1 = get("fedra", fscheme, bits, 1, op, metric)
                p1 = [get(i, s, bits, 1, pop, metric) for i, s in peers]
                f2 = get("fedra", fscheme, bits, 2, op, "ops_per_s")
                p2 = [get(i, s, bits, 2, pop, "ops_per_s") for i, s in peers]
                if f1 is None and f2 is None and all(x is None for x in p1 + p2):
                    continue
                label = op if pop == op else f"{op} (vs {pop})"
                cells = [label, fmt(f1)] + [fmt(x) for x in p1] + [ratio(f1, p1[i]) for i, _ in ratios]
                cells += [fmt(f2)] + [fmt(x) for x in p2]
                out.append("| " + " | ".join(cells) + " |")
    loads = [l for l in lines if "load" in l]
    if loads:
        out.append("\nLoad average (1/5/15 min): " + "; ".join(f"{l['at']}: {l['load']}" for l in loads))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", default="2048,3072")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=1.0, help="wall time per measurement")
    ap.add_argument("--keygen-min", type=int, default=2, help="minimum key generations per process")
    ap.add_argument("--impls", default="phe,heu", help="python implementations: phe, heu")
    ap.add_argument("--heu-schemes", default="zpaillier,fpaillier,ou")
    ap.add_argument("--ops", default="", help="comma-separated subset of " + ",".join(OPS))
    ap.add_argument("--fedra", help="path of the fedra binary: run `fedra bench he` first")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    ap.add_argument("--table", metavar="JSONL", help="only print the table of a saved run")
    args = ap.parse_args()
    args.bits = [int(b) for b in args.bits.split(",") if b]
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.ops = [o for o in args.ops.split(",") if o]
    if args.table:
        with open(args.table) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        print(table(lines, "ops_per_cpu_s"))
        print(table(lines, "ops_per_s"))
        return
    os.environ["YACL_NUM_THREADS"] = "1"
    out = open(args.out, "a") if args.out else None

    def mark(at):
        emit({"bench": "he", "at": at, "load": load()}, out)

    if args.fedra:
        mark("start fedra")
        run_fedra(args.fedra, args, out)
    impls = [i for i in args.impls.split(",") if i]
    for impl in impls:
        schemes = ["paillier"] if impl == "phe" else [s for s in args.heu_schemes.split(",") if s]
        mark(f"start {impl}")
        for scheme in schemes:
            for bits in args.bits:
                for t in args.threads:
                    run_python(impl, scheme, bits, t, args, out)
    mark("end")
    print(table(LINES, "ops_per_cpu_s"))
    print(table(LINES, "ops_per_s"))
    if out:
        out.close()


if __name__ == "__main__":
    main()
