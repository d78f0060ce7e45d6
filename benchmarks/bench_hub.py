"""A fake hub for the benchmarks, served from its own process so it never holds the app's GIL.

    python -m benchmarks.bench_hub --repos 1000   # prints "ready http://127.0.0.1:PORT", serves

It holds `--repos` small repos named bench/model-NNNN and one repo, big/card, whose card is
about 1 MB of Markdown (headings, lists, tables, code).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.support.hub_server import HubServer

BIG_CARD_REPO = "big/card"
_SECTION = """## Section {n}

Some **bold** text, a [link](https://example.com/{n}) and `inline code`.

- item one
- item two
  - nested item

```python
print("hello {n}")
```

| column | value |
|--------|-------|
| a      | {n}   |

"""


def big_card(size: int = 1_000_000) -> str:
    parts, total, number = ["---\nlicense: apache-2.0\n---\n# A very big card\n\n"], 0, 0
    while total < size:
        section = _SECTION.format(n=number)
        parts.append(section)
        total += len(section)
        number += 1
    return "".join(parts)


def serve(repos: int, page_size: int) -> None:
    with tempfile.TemporaryDirectory() as root, HubServer(Path(root), page_size=page_size) as hub:
        for number in range(repos):
            hub.add_repo(
                f"bench/model-{number:04d}", downloads=number, card="---\nlicense: mit\n---\n# m\n"
            )
        hub.add_repo(BIG_CARD_REPO, card=big_card(), downloads=-1)
        print(f"ready {hub.url}", flush=True)
        threading.Event().wait()  # until the parent kills us


class BenchHub:
    """Starts `serve` in a child process; `url` is its endpoint."""

    def __init__(self, repos: int = 1000, page_size: int = 50) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_hub",
                "--repos",
                str(repos),
                "--page-size",
                str(page_size),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"the benchmark hub did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    def close(self) -> None:
        self._process.kill()
        self._process.wait()

    def __enter__(self) -> BenchHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=50)
    arguments = parser.parse_args()
    serve(arguments.repos, arguments.page_size)
