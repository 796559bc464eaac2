"""``reference-cluster image import|list|rm``: the cluster's image store from the shell.

    reference-cluster image import busybox:1.36 busybox.tar   # docker save, OCI or rootfs tar
    reference-cluster image list
    reference-cluster image rm busybox:1.36

``--name CLUSTER`` picks the cluster (its store is ``<state-dir>/<name>/images``, which
must be up); ``--images DIR`` names a store directory instead. Errors are ``ImageError``s
(one line); ``reference-cluster`` prints them and exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import ImageError
from .store import Image, ImageStore

__all__ = ["add_image_parser", "run_image"]


def add_image_parser(sub: Any) -> None:
    """Add ``image`` and its subcommands to ``reference-cluster``'s subparsers ``sub``."""
    image = sub.add_parser("image", help="import, list and remove the cluster's images")
    actions = image.add_subparsers(dest="image_command", metavar="import|list|rm", required=True)
    imp = actions.add_parser("import", help="import an image archive as NAME[:TAG]")
    imp.add_argument("image", metavar="NAME[:TAG]")
    imp.add_argument("tarball", metavar="TARBALL", help="docker save, OCI layout or rootfs tar")
    actions.add_parser("list", help="list the images")
    rm = actions.add_parser("rm", help="remove an image")
    rm.add_argument("image", metavar="NAME[:TAG]")
    for parser in actions.choices.values():
        parser.add_argument("--name", default="default", help="the cluster's name")
        parser.add_argument("--images", help="an image store directory instead of the cluster's")


def run_image(args: argparse.Namespace) -> int:
    """Run ``image import|list|rm``; raises ``ImageError`` (one line) when it cannot."""
    store = _store(args)
    if args.image_command == "import":
        image = store.import_archive(args.image, Path(args.tarball))
        print(f"imported {image.short_name} ({_short_id(image)}, {_size(image)}, {image.format})")
    elif args.image_command == "list":
        rows = [("NAME", "IMAGE ID", "SIZE", "FORMAT")]
        rows += [(i.short_name, _short_id(i), _size(i), i.format) for i in store.list()]
        widths = [max(len(row[c]) for row in rows) for c in range(3)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
            print("  ".join([*cells, row[3]]))
    else:
        image = store.remove(args.image)
        print(f"removed {image.short_name}")
    return 0


def _store(args: argparse.Namespace) -> ImageStore:
    if args.images:
        return ImageStore(args.images)
    state = Path(args.state_dir)
    if not (state / args.name / "cluster.json").is_file():
        raise ImageError(
            f"cluster {args.name} is not up (nothing in {state / args.name}); run"
            f" 'reference-cluster up --name {args.name}' first, or name a store with --images DIR"
        )
    return ImageStore.for_cluster(state, args.name)


def _short_id(image: Image) -> str:
    return image.id.split(":", 1)[-1][:12]


def _size(image: Image) -> str:
    size = float(image.size)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
