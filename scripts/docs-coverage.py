#!/usr/bin/env python3
"""Lists the public symbols without documentation in DocC archives built with
`--experimental-documentation-coverage` (make docs).

    scripts/docs-coverage.py [--brief | --detailed] ARCHIVE.doccarchive [...]

--brief (the default) prints, per module, how many symbols have an abstract (a first sentence of
`///`), by kind, and names the undocumented types and protocols; --detailed names every
undocumented symbol. It reports and never fails: the count is for shrinking the public surface.
"""
import json
import os
import sys

TYPE_KINDS = {"Class", "Structure", "Enumeration", "Protocol", "Type Alias"}


def main(argv):
    detailed = "--detailed" in argv
    archives = [a for a in argv if not a.startswith("--")]
    if not archives:
        sys.exit(__doc__)
    for archive in archives:
        path = os.path.join(archive, "documentation-coverage.json")
        if not os.path.exists(path):
            sys.exit(f"docs-coverage: {path} is missing (build with --experimental-documentation-coverage)")
        with open(path) as f:
            entries = [e for e in json.load(f) if e["kind"]["isSymbol"] and e["kind"]["name"] != "Module"]
        module = os.path.basename(archive).removesuffix(".doccarchive")
        missing = [e for e in entries if not e["hasAbstract"]]
        print(f"{module}: {len(entries) - len(missing)} of {len(entries)} public symbols documented, "
              f"{len(missing)} without documentation")
        kinds = {}
        for e in entries:
            total, undocumented = kinds.get(e["kind"]["name"], (0, 0))
            kinds[e["kind"]["name"]] = (total + 1, undocumented + (not e["hasAbstract"]))
        for kind, (total, undocumented) in sorted(kinds.items(), key=lambda k: -k[1][1]):
            if undocumented:
                print(f"  {kind}: {undocumented} of {total} undocumented")
        names = [e for e in missing if detailed or e["kind"]["name"] in TYPE_KINDS]
        for e in sorted(names, key=lambda e: e["referencePath"]):
            print(f"  - {e['referencePath'].split('/documentation/', 1)[-1]} ({e['kind']['name']})")


if __name__ == "__main__":
    main(sys.argv[1:])
