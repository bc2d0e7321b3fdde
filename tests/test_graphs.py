import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import FancyBboxPatch

from tfpcourse import graphs


@pytest.fixture
def logistic_graph(tf):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 2), name="x")
        w = tf.Variable(tf.zeros((2, 1)), name="w")
        with tf.name_scope("model"):
            tf.sigmoid(tf.matmul(x, w), name="p")
    return graph


def _boxes(fig):
    return [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]


def test_node_kinds_classify_tensorflow_op_types():
    assert graphs.node_kind("Placeholder") == "placeholder"
    assert graphs.node_kind("VarHandleOp") == "variable"
    assert graphs.node_kind("Const") == "constant"
    assert graphs.node_kind("MatMul") == "operation"
    assert graphs.node_kind("VarIsInitializedOp") == "operation"
    with pytest.raises(TypeError, match="op_type must be a string"):
        graphs.node_kind(3)


def test_graph_nodes_lists_ops_with_kinds_and_inputs(logistic_graph):
    nodes = {n.name: n for n in graphs.graph_nodes(logistic_graph)}
    assert nodes["x"].kind == "placeholder"
    assert nodes["w"].kind == "variable"
    assert nodes["model/MatMul"].inputs[0] == "x"
    assert nodes["model/p"].op_type == "Sigmoid"
    assert nodes["model/p"].inputs == ("model/MatMul",)


def test_plot_graph_draws_one_box_per_op(logistic_graph):
    fig = graphs.plot_graph(logistic_graph)
    assert len(_boxes(fig)) == len(logistic_graph.get_operations())
    plt.close(fig)


def test_collapsing_name_scopes_reduces_the_boxes(logistic_graph):
    full = graphs.plot_graph(logistic_graph)
    collapsed = graphs.plot_graph(logistic_graph, collapse=["model"])
    n_model_ops = sum(op.name.startswith("model/") for op in logistic_graph.get_operations())
    assert len(_boxes(collapsed)) == len(_boxes(full)) - n_model_ops + 1
    plt.close("all")


def test_plot_graph_accepts_a_concrete_function_and_marks_captured_variables(tf):
    v = tf.Variable(1.0)

    @tf.function
    def f(x):
        return x * v

    concrete = f.get_concrete_function(tf.TensorSpec([], tf.float32))
    kinds = {n.name: n.kind for n in graphs.graph_nodes(concrete)}
    assert kinds["x"] == "placeholder"
    assert "variable" in kinds.values()  # the captured resource handle
    fig = graphs.plot_graph(concrete, title="f")
    assert fig.axes[0].get_title() == "f"
    plt.close(fig)


def test_plot_graph_refuses_unreadably_large_pictures(logistic_graph):
    with pytest.raises(ValueError, match="more than max_nodes=2; pass collapse=True"):
        graphs.plot_graph(logistic_graph, max_nodes=2)


def test_plot_graph_rejects_things_that_are_not_graphs():
    with pytest.raises(TypeError, match=r"graph must be a tf\.Graph"):
        graphs.plot_graph([1, 2, 3])
    with pytest.raises(TypeError, match="collapse must be"):
        graphs.plot_graph(object(), collapse="model")
