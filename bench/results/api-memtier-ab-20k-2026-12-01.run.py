import asyncio, os, secrets, sys, tempfile, time, json
from pathlib import Path
from bench.api import DEFAULT_POSTGRES, DEFAULT_REDIS, PYTHON, _api_key, _loadtest, _start, _stop, _warm, server_env
from bench.api_data import Catalogue
from bench.queue import _redis_cleanup
n = int(sys.argv[1]); secs = int(sys.argv[2]); hook = sys.argv[3]
dsn = f"{DEFAULT_POSTGRES.rstrip('/')}/pfbench_api_{n}"
prefix = f"pfgcx{secrets.token_hex(3)}"
folder = Path(tempfile.mkdtemp(prefix="gcx-"))
cat = Catalogue(n)
key = asyncio.run(_api_key(dsn))
env = server_env(dsn, DEFAULT_REDIS, prefix, [hook] if hook != "-" else [])
server = _start("api", [PYTHON, "-m", "pricefleet", "api", "--workers", "2"], env, folder, "/healthz")
try:
    products = cat.product_paths(min(10000, n // 2), seed=1)
    print(dict(asyncio.run(_warm(server.url, products, key, passes=4))))
    pf = folder / "p.txt"; pf.write_text("\n".join(products) + "\n")
    for r in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):
        rep = _loadtest(server.url, pf, key, 1000.0, secs, {})
        print(json.dumps(rep["total"]["latency_ms"]), rep["total"]["errors"], os.getloadavg())
finally:
    _stop(server)
    for s in (prefix, f"_tag:{prefix}"):
        _redis_cleanup(DEFAULT_REDIS, s)
