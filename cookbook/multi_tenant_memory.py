"""Memory for many customers in one database, with nothing shared between them.

    python cookbook/multi_tenant_memory.py

Every Sutram call names one tenant; no call reads or writes across tenants. This recipe
stores the same kinds of memories for two companies, then shows: search only ever sees
the caller's tenant; a changed fact is superseded, not lost (readable "as of" before the
change); procedural memories keep every version. Runs offline (default embedder).
"""

from __future__ import annotations

import time

from sutram_core.memory import MemoryStore


def main() -> None:
    with MemoryStore.from_url(tenant="acme") as acme, MemoryStore.from_url(tenant="globex") as globex:
        for store, plan, contact in [(acme, "Enterprise plan, renews in March", "Dana (CTO)"),
                                     (globex, "Starter plan, monthly billing", "Lee (founder)")]:
            store.put(("accounts", "main"), "plan", {"text": plan})
            store.put(("accounts", "main"), "contact", {"text": f"Main contact: {contact}"})
            store.add(("tickets",), "Customer asked how to export invoices as CSV", kind="episodic")

        for name, store in [("acme", acme), ("globex", globex)]:
            hits = store.search("which subscription are they on?", limit=2)
            print(f"{name}: {[h.record.text for h in hits]}")
            assert all(h.record.tenant_id == name for h in hits)

        before = time.time()
        time.sleep(0.01)
        acme.supersede((("accounts", "main"), "contact"), "Main contact: Sam (new CTO)")
        print("acme contact now:", [h.record.text for h in acme.search("who is the main contact?", limit=1)])
        old = acme.get(("accounts", "main"), "contact", as_of=before)
        print("acme contact before the change:", old.text if old else None)

        for version in ("Greet, then ask for the order number.",
                        "Greet, ask for the order number, then confirm the email on file."):
            acme.put(("procedures",), "support-opening", {"text": version}, kind="procedural")
        print("support procedure versions:",
              [(r.version, r.text) for r in acme.history(("procedures",), "support-opening")])
        print("globex sees acme's procedure?", globex.get(("procedures",), "support-opening") is not None)


if __name__ == "__main__":
    main()
