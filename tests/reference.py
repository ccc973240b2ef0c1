"""LangGraph's InMemorySaver, extended with the optional operations it lacks.

Used as the oracle of the differential tests. copy_thread, prune and delete_for_runs
follow the documented contract of ``BaseCheckpointSaver`` in the plainest way.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from langgraph.checkpoint.memory import InMemorySaver


class ReferenceSaver(InMemorySaver):
    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        if self.storage.get(target_thread_id):
            raise ValueError("target thread already has checkpoints")
        self.storage[target_thread_id] = copy.deepcopy(self.storage.get(source_thread_id, {}))
        for (tid, ns, cid), writes in list(self.writes.items()):
            if tid == source_thread_id:
                self.writes[(target_thread_id, ns, cid)] = copy.deepcopy(writes)
        for (tid, ns, ch, v), blob in list(self.blobs.items()):
            if tid == source_thread_id:
                self.blobs[(target_thread_id, ns, ch, v)] = blob

    def _drop(self, thread_id: str, ns: str, checkpoint_id: str) -> None:
        self.storage[thread_id][ns].pop(checkpoint_id, None)
        self.writes.pop((thread_id, ns, checkpoint_id), None)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for tid in thread_ids:
            if strategy == "delete":
                self.delete_thread(tid)
                continue
            for ns, cps in list(self.storage.get(tid, {}).items()):
                if cps:
                    latest = max(cps)
                    for cid in [c for c in cps if c != latest]:
                        self._drop(tid, ns, cid)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        wanted = set(run_ids)
        for tid, by_ns in list(self.storage.items()):
            for ns, cps in list(by_ns.items()):
                for cid, (_, metadata, _) in list(cps.items()):
                    if self.serde.loads_typed(metadata).get("run_id") in wanted:
                        self._drop(tid, ns, cid)
