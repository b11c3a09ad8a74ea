"""YAML whose aliases cannot expand without bound (the "billion laughs" file).

PyYAML composes an alias as a second reference to its anchor's node, so a file of nine lines
can name 10^9 nodes while its node graph stays small; whoever copies the graph into plain
containers (OmegaConf does, and so does any ``dict(...)`` of the loaded data) then allocates
every one of them. :func:`expanded_size` counts the nodes of the copy on the graph itself, with
one count per distinct node, so a file is refused before anything expands.
"""
from __future__ import annotations

from pathlib import Path

import yaml

# Nodes that aliases may add to a file when it is expanded. Hand-written configs reuse an anchor
# a few times (some dozens of nodes); 100,000 is far above that and far below what makes
# OmegaConf take seconds or gigabytes.
MAX_ALIAS_NODES = 100_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YAMLLimitError(ValueError):
    """A YAML file whose aliases expand past :data:`MAX_ALIAS_NODES`, or refer to themselves."""


def expanded_size(root: yaml.Node, limit: int) -> tuple[int, int]:
    """(distinct nodes, nodes after expanding every alias) of a composed document; stops counting
    once the expansion passes ``limit`` nodes more than the distinct ones."""
    sizes: dict[int, int] = {}
    distinct = 0
    # Iterative post-order walk: an alias chain may be deeper than Python's recursion limit.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            open_nodes.discard(key)
            if sizes[key] - distinct > limit:
                return distinct, sizes[key]
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YAMLLimitError("an alias refers to a node that contains it (a recursive alias)")
        distinct += 1
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise YAMLLimitError("an alias refers to a node that contains it (a recursive alias)")
            if id(child) not in sizes:
                stack.append((child, False))
    return distinct, sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_node(root: yaml.Node | None, source: str) -> None:
    """Raise :class:`YAMLLimitError` (naming ``source``) when ``root``'s aliases expand too far."""
    if root is None:
        return
    try:
        distinct, expanded = expanded_size(root, MAX_ALIAS_NODES)
    except YAMLLimitError as error:
        raise YAMLLimitError(f"{source}: {error}; refusing to load it") from None
    if expanded - distinct > MAX_ALIAS_NODES:
        raise YAMLLimitError(f"{source}: its YAML aliases expand to more than {MAX_ALIAS_NODES} nodes "
                             f"(a 'billion laughs' file?); refusing to load it")


def _safe_load(stream, source: str):
    loader = _Loader(stream)
    try:
        root = loader.get_single_node()
        check_node(root, source)
        return loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def check_text(text: str, source: str) -> None:
    """Refuse YAML text whose aliases expand too far, for a caller that parses it with a loader
    of its own (OmegaConf's, whose scalars differ from ``safe_load``'s)."""
    check_node(yaml.compose(text, Loader=_Loader), source)


def load(path: Path | str):
    """``yaml.safe_load`` of a file, refused (:class:`YAMLLimitError`) when its aliases expand
    too far."""
    with open(path) as handle:
        return _safe_load(handle, str(path))


def check_file(path: Path | str):
    """The file's data, or None when it does not parse: syntax errors are left to whoever loads
    it (a broken file that no study uses must not stop one that does not). Raises
    :class:`YAMLLimitError` as :func:`load` does."""
    try:
        return load(path)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
