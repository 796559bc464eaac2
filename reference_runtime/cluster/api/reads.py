"""The ``Registry``'s reads: get, list (with pages and continue tokens) and watch."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import (
    BadRequestError,
    ServerTimeoutError,
)
from . import status as st
from .objects import Obj, decode, meta
from .registry_base import RegistryBase, ResourceRef, resolve
from .selectors import parse_field_selector, parse_label_selector
from .strategies import (
    field_value,
)
from .watch import ApiWatch, open_watch


class RegistryReads(RegistryBase):
    """get, list and watch."""

    def get(self, resource: ResourceRef, name: str, *, namespace: str | None = None) -> Obj:
        r = resolve(resource)
        self._check_scope(r, namespace)
        record = self._store_call(self.store.get, r.key(namespace, name))
        if record is None:
            raise st.not_found(r, name)
        return decode(record.value, record.mod_revision)

    def list(
        self,
        resource: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
    ) -> Obj:
        """A ``<Kind>List``; ``limit``/``continue_token`` page it (pages are not snapshots)."""
        r = resolve(resource)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, r.selectable_fields)
        if limit < 0:
            raise BadRequestError(f"limit must be >= 0, not {limit}")
        start_after, token_rv = _parse_continue(continue_token)
        prefix = r.prefix(namespace)
        if start_after and not start_after.startswith(prefix):
            raise BadRequestError("the continue token is not for this list")
        items: list[Obj] = []
        revision, more = 0, False
        while True:
            page = self._store_call(self.store.list, prefix, start_after=start_after, limit=limit)
            revision = token_rv or page.revision
            stopped_early = False
            for index, record in enumerate(page.records):
                start_after = record.key
                obj = decode(record.value, record.mod_revision)
                if labels.matches(meta(obj).get("labels")) and fields.matches(
                    lambda f, o=obj: field_value(o, f)  # type: ignore[misc]
                ):
                    obj.pop("kind", None)
                    obj.pop("apiVersion", None)
                    items.append(obj)
                    if limit and len(items) >= limit:
                        stopped_early = index < len(page.records) - 1
                        break
            if limit and len(items) >= limit:
                more = stopped_early or page.more
                break
            if not page.more:
                break
        self._check_resource_version(resource_version, revision)
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if more:
            list_meta["continue"] = _make_continue(start_after, revision)
        return {
            "kind": f"{r.kind}List",
            "apiVersion": r.api_version,
            "metadata": list_meta,
            "items": items,
        }

    def watch(
        self,
        resource: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        allow_bookmarks: bool = False,
        send_initial_events: bool = False,
        timeout_seconds: float | None = None,
        bookmark_interval: float | None = None,
    ) -> ApiWatch:
        """Watch a resource (see ``watch.ApiWatch``); close the watch when done."""
        r = resolve(resource)
        return open_watch(
            self.store,
            r,
            namespace=namespace,
            labels=parse_label_selector(label_selector),
            fields=parse_field_selector(field_selector, r.selectable_fields),
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
            send_initial_events=send_initial_events,
            timeout_seconds=timeout_seconds,
            bookmark_interval=bookmark_interval or self.bookmark_interval,
        )

    def _check_resource_version(self, requested: str, current: int) -> None:
        if requested in ("", "0"):
            return
        try:
            wanted = int(requested)
        except ValueError:
            raise BadRequestError(f'invalid resource version "{requested}"') from None
        if wanted > current:
            raise ServerTimeoutError(
                f"Too large resource version: {wanted}, current: {current}",
                details={
                    "causes": [
                        {
                            "reason": "ResourceVersionTooLarge",
                            "message": "Too large resource version",
                        }
                    ],
                    "retryAfterSeconds": 1,
                },
            )


def _make_continue(key: str, revision: int) -> str:
    raw = json.dumps({"v": 1, "rv": revision, "start": key}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _parse_continue(token: str) -> tuple[str, int]:
    if not token:
        return "", 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequestError("continue key is not valid") from None
