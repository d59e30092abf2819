"""HS012: gc.DEBUG_SAVEALL left on, so every collected cycle lands in gc.garbage."""

import gc

from _harness import measure


class TreeNode:
    def __init__(self, parent: "TreeNode | None" = None) -> None:
        self.parent = parent
        self.children: list = []


def handle(request_id: int) -> None:
    root = TreeNode()
    root.children.append(TreeNode(root))  # a parent <-> child cycle per request


gc.set_debug(gc.DEBUG_SAVEALL)
measure(handle)
