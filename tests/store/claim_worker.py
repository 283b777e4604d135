"""A claimant in a process of its own, posing as one host (``USAM_VIDEO_HOST`` in its
environment), for ``test_claims.py``. It reads one JSON command a line on stdin and answers each
with one JSON line on stdout:

- ``{"op": "open", "location": URL, "options": {...}}``: open the store, claim and release a
  video of its own (the process's first claim probes the store and sweeps expired claims, kept
  out of the races that follow);
- ``{"op": "claim", "videos": [...], "owner": O, "lease": S}``: claim each in turn; answers
  ``{"results": {video: None (won) or the holder}}``;
- ``{"op": "hold", "video": V, "owner": O, "lease": S, "seconds": T}``: claim (answering
  ``{"claimed": None or the holder}`` at once), keep the lease renewed for T seconds, release;
  answers ``{"renewals": n}``;
- ``{"op": "poll", "video": V, "owner": O, "lease": S, "seconds": T}``: try to claim every 50 ms
  for T seconds, releasing at once if it wins; answers ``{"holders": [...], "won": n}``;
- ``{"op": "die", "video": V, "owner": O, "lease": S}``: claim and exit at once, never releasing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from usam_video.store import PseudoLabelStore


def _answer(value: dict[str, Any]) -> None:
    print(json.dumps(value), flush=True)


def _hold(store: PseudoLabelStore, cmd: dict[str, Any]) -> dict[str, Any]:
    claimed = store.claim(cmd["video"], cmd["owner"], cmd["lease"])
    _answer({"claimed": claimed})  # at once: the test starts the other host then
    renewals = 0
    if claimed is None:
        with store.keep_claim(cmd["video"], cmd["owner"], cmd["lease"]) as renewal:
            time.sleep(cmd["seconds"])
        renewals = renewal.renewals
        store.release(cmd["video"], cmd["owner"])
    return {"renewals": renewals}


def _poll(store: PseudoLabelStore, cmd: dict[str, Any]) -> dict[str, Any]:
    holders, won = set(), 0
    end = time.monotonic() + cmd["seconds"]
    while time.monotonic() < end:
        holder = store.claim(cmd["video"], cmd["owner"], cmd["lease"])
        if holder is None:
            won += 1
            store.release(cmd["video"], cmd["owner"])
        else:
            holders.add(holder)
        time.sleep(0.05)
    return {"holders": sorted(holders), "won": won}


def main() -> None:
    store: PseudoLabelStore | None = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "open":
            store = PseudoLabelStore.open(cmd["location"], storage_options=cmd.get("options"))
            warm = f"warm-{os.getpid()}"
            store.claim(warm)
            store.release(warm)
            _answer({"ok": True})
        elif store is None:
            raise SystemExit(f"claim_worker: expected 'open' first, got {cmd['op']!r}")
        elif cmd["op"] == "claim":
            results = {v: store.claim(v, cmd["owner"], cmd["lease"]) for v in cmd["videos"]}
            _answer({"results": results})
        elif cmd["op"] == "hold":
            _answer(_hold(store, cmd))
        elif cmd["op"] == "poll":
            _answer(_poll(store, cmd))
        elif cmd["op"] == "die":
            _answer({"claimed": store.claim(cmd["video"], cmd["owner"], cmd["lease"])})
            os._exit(0)


if __name__ == "__main__":
    main()
