"""Lecture figures and micrograd-style checks of the chain rule on single nodes."""
import numpy as np
import pytest

from rlnn import MLP, activations, gradcheck


def test_mnist_mlp_parameter_count():
    # 784*512 + 512 + 512*512 + 512 + 512*10 + 10
    assert MLP([784, 512, 512, 10]).num_params() == 669706


def test_sigmoid_derivative_at_one():
    # sigma(1)(1 - sigma(1))
    assert activations.sigmoid.df(1.0) == pytest.approx(0.19661193324148185, rel=1e-15)


# Each node: forward value and the local gradients d out / d inputs.
def add_node(a, b):
    return a + b, (1.0, 1.0)


def mul_node(a, b):
    return a * b, (b, a)


def max_node(a, b):
    return max(a, b), ((1.0, 0.0) if a > b else (0.0, 1.0))


def relu_node(a):
    return max(a, 0.0), ((1.0 if a > 0 else 0.0),)


@pytest.mark.parametrize("node, point", [
    (add_node, (1.5, -2.0)),
    (mul_node, (1.5, -2.0)),
    (max_node, (1.5, -2.0)),
    (max_node, (-3.0, 0.25)),
    (relu_node, (0.7,)),
    (relu_node, (-0.7,)),
])
def test_local_gradient_of_each_node(node, point):
    x = np.array(point)
    _, local = node(*x)
    assert gradcheck(lambda: node(*x)[0], x, np.array(local)) < 1e-9


@pytest.mark.parametrize("point", [(2.0, -3.0, 10.0, 1.0), (-1.5, 0.5, 0.2, 3.0),
                                   (0.5, 4.0, -5.0, -2.0)])
def test_chain_rule_through_a_small_graph(point):
    """L = relu(a*b + c) * max(a, d) + (c + d), backpropagated node by node."""
    x = np.array(point)

    def forward():
        a, b, c, d = x
        e, _ = mul_node(a, b)
        f, _ = add_node(e, c)
        g, _ = relu_node(f)
        h, _ = max_node(a, d)
        k, _ = mul_node(g, h)
        s, _ = add_node(c, d)
        out, _ = add_node(k, s)
        return out

    a, b, c, d = x
    e, (de_da, de_db) = mul_node(a, b)
    f, (df_de, df_dc) = add_node(e, c)
    g, (dg_df,) = relu_node(f)
    h, (dh_da, dh_dd) = max_node(a, d)
    k, (dk_dg, dk_dh) = mul_node(g, h)
    s, (ds_dc, ds_dd) = add_node(c, d)
    _, (dout_dk, dout_ds) = add_node(k, s)
    # backward, one chain-rule product per edge, summing where paths merge
    dk = dout_dk
    ds = dout_ds
    dg = dk * dk_dg
    dh = dk * dk_dh
    df = dg * dg_df
    de = df * df_de
    grad_a = de * de_da + dh * dh_da
    grad_b = de * de_db
    grad_c = df * df_dc + ds * ds_dc
    grad_d = dh * dh_dd + ds * ds_dd
    analytic = np.array([grad_a, grad_b, grad_c, grad_d])
    assert gradcheck(forward, x, analytic) < 1e-8
