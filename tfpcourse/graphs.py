"""Static pictures and tables of TensorFlow graphs.

TensorBoard draws graphs interactively, but it needs a server, and its notebook widget loads code
from the internet. :func:`plot_graph` draws the same information with matplotlib, so the picture
is an ordinary PNG that shows in JupyterLab, in the published book and offline.

Nodes are coloured by what they are:

* **placeholders / inputs** (orange): values you feed in when you run the graph;
* **variables** (green): state that lives across runs, the only thing an optimiser changes;
* **constants** (grey);
* **operations** (blue): everything computed from the above.

Ops that share a name scope (``gradients/...``, ``Adam/...``) can be collapsed into one box, as
TensorBoard does, so the picture stays readable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfpcourse._validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["GraphNode", "graph_nodes", "node_kind", "plot_graph"]

KIND_COLOURS = {
    "placeholder": "#f4a259",
    "variable": "#8cc084",
    "constant": "#c9c9c9",
    "operation": "#7fb3d5",
}
_KIND_RANK = {"placeholder": 3, "variable": 2, "operation": 1, "constant": 0}
_PLACEHOLDER_OPS = {"Placeholder", "PlaceholderWithDefault", "_Arg"}
_VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}
_DT_RESOURCE = 20  # tensorflow/core/framework/types.proto
_HIDDEN_OPS = {"NoOp"}


def node_kind(op_type: str) -> str:
    """Classify a TensorFlow op type as ``placeholder``, ``variable``, ``constant`` or
    ``operation``."""
    if not isinstance(op_type, str):
        raise TypeError(f"op_type must be a string, got {type(op_type).__name__}")
    if op_type in _PLACEHOLDER_OPS:
        return "placeholder"
    if op_type in _VARIABLE_OPS:
        return "variable"
    if op_type == "Const":
        return "constant"
    return "operation"


@dataclass(frozen=True)
class GraphNode:
    """One op of a graph: its name, type, kind and the names of the ops it reads from."""

    name: str
    op_type: str
    kind: str
    inputs: tuple[str, ...]


def _graph_def(graph: Any) -> Any:
    """Accept a ``tf.Graph``, a ``GraphDef`` or a concrete function."""
    if hasattr(graph, "graph") and hasattr(graph, "structured_input_signature"):
        graph = graph.graph  # ConcreteFunction
    if hasattr(graph, "as_graph_def"):
        return graph.as_graph_def()
    if hasattr(graph, "node") and hasattr(graph, "SerializeToString"):
        return graph
    raise TypeError(
        "graph must be a tf.Graph, a GraphDef or a concrete function "
        f"(from tf.function(...).get_concrete_function()), got {type(graph).__name__}"
    )


def graph_nodes(graph: Any) -> list[GraphNode]:
    """List the ops of a graph (data inputs only, control dependencies left out), in the
    graph's own order."""
    nodes = []
    for node in _graph_def(graph).node:
        inputs = tuple(
            i.split(":")[0] for i in node.input if not i.startswith("^")
        )
        kind = node_kind(node.op)
        if kind == "placeholder" and node.attr["dtype"].type == _DT_RESOURCE:
            # A tf.function captures a variable as a resource-typed input: it is the variable.
            kind = "variable"
        nodes.append(GraphNode(node.name, node.op, kind, inputs))
    return nodes


def _group_of(name: str, collapse: bool | Sequence[str]) -> str:
    if collapse is False:
        return name
    head = name.split("/")[0]
    if collapse is True:
        return head
    return head if head in collapse else name


def _layers(groups: list[str], edges: set[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering; back edges (cycles) are ignored."""
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str) -> None:  # iterative DFS post-order
        stack = [(n, iter(succ[n]))]
        state[n] = 1
        while stack:
            node, it = stack[-1]
            for child in it:
                if state.get(child, 0) == 0:
                    state[child] = 1
                    stack.append((child, iter(succ[child])))
                    break
            else:
                state[node] = 2
                order.append(node)
                stack.pop()

    for g in groups:
        if state.get(g, 0) == 0:
            visit(g)
    topo = order[::-1]
    position = {n: i for i, n in enumerate(topo)}
    layer = {n: 0 for n in groups}
    for n in topo:
        for child in succ[n]:
            if position[child] > position[n]:  # forward edge only
                layer[child] = max(layer[child], layer[n] + 1)
    return layer


def plot_graph(
    graph: Any,
    *,
    collapse: bool | Sequence[str] = (),
    hide_types: Iterable[str] = ("NoOp",),
    title: str | None = None,
    max_nodes: int = 80,
    ax: Any = None,
) -> Figure:
    """Draw a TensorFlow graph as a layered diagram, inputs at the top.

    Parameters
    ----------
    graph:
        A ``tf.Graph``, a ``GraphDef`` or a concrete function.
    collapse:
        ``True`` to draw each top-level name scope as one box, a list of scope names to
        collapse only those (e.g. ``["gradients", "Adam"]``), or ``()`` to draw every op.
    hide_types:
        Op types to leave out (``NoOp`` by default: they only group control dependencies).
    title:
        Title of the picture.
    max_nodes:
        Refuse to draw more boxes than this (collapse scopes instead); a picture with hundreds of
        boxes teaches nothing.
    ax:
        A matplotlib ``Axes`` to draw into; a new figure is made if ``None``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Patch

    max_nodes = check_int("max_nodes", max_nodes, minimum=1)
    if not isinstance(collapse, bool):
        if isinstance(collapse, str):
            raise TypeError("collapse must be True/False or a list of scope names, not a string")
        collapse = tuple(collapse)
    hidden = set(hide_types)
    nodes = [n for n in graph_nodes(graph) if n.op_type not in hidden]
    if not nodes:
        raise ValueError("the graph has no ops to draw")

    group_kind: dict[str, str] = {}
    group_label: dict[str, str] = {}
    group_count: dict[str, int] = defaultdict(int)
    node_group = {}
    for n in nodes:
        g = _group_of(n.name, collapse)
        node_group[n.name] = g
        group_count[g] += 1
        if g not in group_kind or _KIND_RANK[n.kind] > _KIND_RANK[group_kind[g]]:
            group_kind[g] = n.kind
            group_label[g] = n.op_type
    groups = list(dict.fromkeys(node_group[n.name] for n in nodes))
    if len(groups) > max_nodes:
        raise ValueError(
            f"the graph has {len(groups)} boxes to draw, more than max_nodes={max_nodes}; "
            "pass collapse=True (or a list of name scopes) to group ops by scope"
        )
    edges = set()
    for n in nodes:
        for i in n.inputs:
            if i in node_group and node_group[i] != node_group[n.name]:
                edges.add((node_group[i], node_group[n.name]))

    layer = _layers(groups, edges)
    by_layer: dict[int, list[str]] = defaultdict(list)
    for g in groups:
        by_layer[layer[g]].append(g)
    # Order each layer by the mean position of its parents (two sweeps of the barycentre rule).
    xpos: dict[str, float] = {}
    for _ in range(2):
        for lvl in sorted(by_layer):
            members = by_layer[lvl]
            if lvl > 0:
                def key(g: str) -> float:
                    parents = [xpos[a] for a, b in edges if b == g and a in xpos]
                    return sum(parents) / len(parents) if parents else 0.0

                members.sort(key=key)
            width = len(members)
            for i, g in enumerate(members):
                xpos[g] = i - (width - 1) / 2

    n_layers = max(by_layer) + 1
    widest = max(len(m) for m in by_layer.values())
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(max(6.0, 2.6 * widest), max(3.0, 1.25 * n_layers + 0.8)), dpi=90
        )
    else:
        fig = ax.figure
    box_w, box_h = 2.3, 0.62
    scale_x = 2.5
    pos = {g: (xpos[g] * scale_x, -layer[g] * 1.25) for g in groups}
    for a, b in sorted(edges):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate(
            "",
            xy=(x1, y1 + box_h / 2),
            xytext=(x0, y0 - box_h / 2),
            arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 0.9,
                        "shrinkA": 0, "shrinkB": 0},
        )
    for g in groups:
        x, y = pos[g]
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2), box_w, box_h,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=KIND_COLOURS[group_kind[g]], edgecolor="#333333", lw=0.8,
            )
        )
        name = g
        if len(name) > 22:  # keep the scope and the op's own name: beta/…/ReadVariableOp
            parts = name.split("/")
            name = f"{parts[0]}/…/{parts[-1]}" if len(parts) > 2 else name
        if len(name) > 24:
            name = name[:23] + "…"
        detail = f"{group_count[g]} ops" if group_count[g] > 1 else group_label[g]
        ax.text(x, y + 0.09, name, ha="center", va="center", fontsize=7, fontweight="bold")
        ax.text(x, y - 0.15, detail, ha="center", va="center", fontsize=7, color="#222222")
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - box_w, max(xs) + box_w)
    ax.set_ylim(min(ys) - box_h, max(ys) + box_h)
    ax.set_axis_off()
    present = [k for k in KIND_COLOURS if k in set(group_kind.values())]
    ax.legend(
        handles=[Patch(facecolor=KIND_COLOURS[k], edgecolor="#333333", label=k) for k in present],
        loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
        title="data flows downward", title_fontsize=8,
    )
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
