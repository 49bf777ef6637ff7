#!/usr/bin/python3
"""Generate tests/hostile/: malformed and hostile models, and manifest.json
giving for each the exit code and a fragment of the message bnfold must
print. Deterministic: run it again and nothing changes.

    /usr/bin/python3 tests/hostile/gen_hostile.py

Every model derives from one small Conv -> BatchNormalization graph (BASE)
by one defect. Truncations and random bit flips are kept only where
Python's own protobuf parser also rejects the bytes, so their expectation
does not come from bnfold itself.
"""

import json
import os
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 15
ENTRIES = []


def tensor(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def base_parts():
    rng = np.random.default_rng(6)
    inits = [
        tensor("W", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
        tensor("B", rng.normal(size=4).astype(np.float32)),
        tensor("scale", rng.uniform(0.5, 1.5, size=4).astype(np.float32)),
        tensor("bias", rng.normal(size=4).astype(np.float32)),
        tensor("mean", rng.normal(size=4).astype(np.float32)),
        tensor("var", rng.uniform(0.5, 1.5, size=4).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["Y"],
                         name="bn", epsilon=1e-5),
    ]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 4, 4])
    return nodes, inits, [x], [y]


def model_of(nodes, inits, inputs, outputs, opset=OPSET):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                             producer_name="gen_hostile")


def base_model():
    return model_of(*base_parts())


BASE = base_model().SerializeToString()


def add(name, data, exit_code, fragment, notes, args=None):
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    entry = {"file": name, "exit": exit_code, "message": fragment, "notes": notes}
    if args:
        entry["args"] = args
    ENTRIES.append(entry)


def variant(edit, **kw):
    """BASE with edit(nodes, inits, inputs, outputs) applied."""
    nodes, inits, inputs, outputs = base_parts()
    edit(nodes, inits, inputs, outputs)
    return model_of(nodes, inits, inputs, outputs, **kw)


def init_named(inits, name):
    return next(t for t in inits if t.name == name)


def python_rejects(data):
    try:
        onnx.ModelProto.FromString(data)
    except Exception:  # noqa: BLE001  (any DecodeError flavour)
        return True
    return False


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


NOT_VALID = "not a valid ONNX model"


def gen_bytes_level():
    add("empty.onnx", b"", 2, "empty file", "no bytes at all")
    add("text.onnx", b"this is not a model\n", 2, NOT_VALID, "a line of text")
    rng = np.random.default_rng(61)
    add("random.onnx", rng.integers(0, 256, 300, dtype=np.uint8).tobytes(), 2, NOT_VALID,
        "300 random bytes")
    add("no_graph.onnx", varint(1 << 3) + varint(8), 2, "has no graph",
        "only ir_version: a valid ModelProto without a graph")
    # Truncations: offsets spread over the file, kept where Python rejects.
    n = 0
    for frac in np.linspace(0.01, 0.99, 40):
        cut = int(len(BASE) * frac)
        if n < 12 and cut > 0 and python_rejects(BASE[:cut]):
            add("truncated_%04d.onnx" % cut, BASE[:cut], 2, NOT_VALID,
                "BASE cut after %d of %d bytes" % (cut, len(BASE)))
            n += 1
    # Random single-bit flips, kept where Python rejects the result.
    rng = np.random.default_rng(62)
    n = 0
    while n < 8:
        pos, bit = int(rng.integers(0, len(BASE))), int(rng.integers(0, 8))
        data = bytearray(BASE)
        data[pos] ^= 1 << bit
        if python_rejects(bytes(data)):
            add("bitflip_%04d_%d.onnx" % (pos, bit), bytes(data), 2, NOT_VALID,
                "BASE with bit %d of byte %d flipped" % (bit, pos))
            n += 1
    # Wire types: the key of ModelProto.graph (field 7) as varint, fixed64
    # and fixed32 instead of length-delimited.
    graph_key = BASE.index(bytes([7 << 3 | 2]))
    for wt, label in ((0, "varint"), (1, "fixed64"), (5, "fixed32")):
        data = bytearray(BASE)
        data[graph_key] = 7 << 3 | wt
        add("wiretype_graph_%s.onnx" % label, bytes(data), 2, NOT_VALID,
            "ModelProto.graph sent with wire type %d" % wt)
    # What protobuf-c accepts but cannot keep: a field numbered 0 (kept as
    # an unknown field, packed again as bytes it refuses) and a NUL inside
    # a name (its char * cuts the name short). Both found by fuzz_fold.
    add("field_number_zero.onnx", BASE + b"\x80\x00\x01", 2, "field numbered 0",
        "BASE and an unknown varint field numbered 0 (key in two bytes)")

    def nul_name(nodes, inits, inputs, outputs):
        nodes[0].name = "conv\0evil"
    add("name_with_nul.onnx", variant(nul_name), 2, "NUL byte",
        "a node name with a NUL byte inside")
    # A length prefix larger than what follows.
    data = bytearray(BASE[:graph_key + 1]) + varint(len(BASE) * 4) + BASE[graph_key + 2:]
    add("length_past_end.onnx", bytes(data), 2, NOT_VALID,
        "the graph's length runs past the end of the file")


def gen_shapes():
    def huge_init(nodes, inits, inputs, outputs):
        t = init_named(inits, "W")
        del t.dims[:]
        t.dims.extend([1 << 40, 1 << 40])
    add("dims_overflow.onnx", variant(huge_init), 2, "product overflows",
        "initializer W with dims 2^40 x 2^40")

    def negative_init(nodes, inits, inputs, outputs):
        init_named(inits, "B").dims[0] = -4
    add("dims_negative.onnx", variant(negative_init), 2, "dims are negative",
        "initializer B with dims [-4]")

    def claims_more(nodes, inits, inputs, outputs):
        t = init_named(inits, "W")
        del t.dims[:]
        t.dims.extend([100000, 100000, 100])
    add("dims_huge_small_data.onnx", variant(claims_more), 2, "raw_data holds 432 bytes",
        "W claims 10^12 elements and holds 108: a 1 kB file must not allocate terabytes")

    def input_huge(nodes, inits, inputs, outputs):
        inputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                         [100000, 100000, 100]))
    add("input_huge.onnx", variant(input_huge), 2, "above the limit",
        "graph input declared 100000x100000x100: refused, never allocated")

    def input_overflow(nodes, inits, inputs, outputs):
        inputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                         [1 << 40, 1 << 40, 3, 3]))
    add("input_dims_overflow.onnx", variant(input_overflow), 2, "overflows",
        "graph input whose declared element count overflows int64")

    def input_negative(nodes, inits, inputs, outputs):
        inputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, -4, 4]))
    add("input_dims_negative.onnx", variant(input_negative), 0, "folded 1 of 1",
        "graph input declared with a negative dim: an unknown dim, as runtimes read "
        "it (paddle2onnx writes -1), taken as 1 for the check")

    def input_symbolic(nodes, inits, inputs, outputs):
        inputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                         ["N", 3, 4, 4]))
    add("input_dim_param_huge.onnx", variant(input_symbolic), 2, "limit for random inputs",
        "symbolic batch set to 10^8 with --dim: a random input that size is refused as a bad "
        "argument (a size bnfold chose itself would make the check fall back instead)",
        args=["--dim", "N=100000000"])

    def expand_huge(nodes, inits, inputs, outputs):
        inits.append(tensor("shape", np.array([1 << 16, 1 << 16], dtype=np.int64)))
        inits.append(tensor("one", np.array([1.0], dtype=np.float32)))
        nodes.append(helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"))
        outputs.append(helper.make_tensor_value_info("big", TensorProto.FLOAT, None))
    add("expand_huge.onnx", variant(expand_huge), 0, "whole-graph check skipped",
        "Expand of one float to 2^16 x 2^16: the evaluator refuses it and the per-fold "
        "check decides")


def gen_structure():
    def cycle(nodes, inits, inputs, outputs):
        nodes[0].input[0] = "Y"
    add("cycle_two_nodes.onnx", variant(cycle), 2, "cycle",
        "Conv reads the BN's output, BN reads the Conv's")

    def self_loop(nodes, inits, inputs, outputs):
        nodes.append(helper.make_node("Relu", ["r"], ["r"], name="relu"))
    add("cycle_self.onnx", variant(self_loop), 2, "cycle", "a Relu reading its own output")

    def dangling(nodes, inits, inputs, outputs):
        nodes[0].input[1] = "no_such_weight"
    add("dangling_input.onnx", variant(dangling), 2, "no_such_weight",
        "the Conv's weight names no tensor")

    def dangling_bn(nodes, inits, inputs, outputs):
        nodes[1].input[4] = "no_such_var"
    add("dangling_bn_param.onnx", variant(dangling_bn), 2, "no_such_var",
        "the BN's variance names no tensor")

    def dangling_out(nodes, inits, inputs, outputs):
        outputs.append(helper.make_tensor_value_info("nowhere", TensorProto.FLOAT, None))
    add("dangling_output.onnx", variant(dangling_out), 2, "nowhere",
        "a graph output nothing produces")

    def dup_output(nodes, inits, inputs, outputs):
        nodes.append(helper.make_node("Relu", ["X"], ["c"], name="relu"))
    add("duplicate_output.onnx", variant(dup_output), 2, "already defined",
        "two nodes produce 'c'")

    def output_is_init(nodes, inits, inputs, outputs):
        nodes.append(helper.make_node("Relu", ["X"], ["B"], name="relu"))
    add("output_shadows_initializer.onnx", variant(output_is_init), 2, "already defined",
        "a node output named like initializer B")

    def no_op(nodes, inits, inputs, outputs):
        nodes.append(helper.make_node("", ["X"], ["z"], name="nameless"))
    add("node_without_op.onnx", variant(no_op), 2, "no operator type", "a node with op_type ''")

    def conv_one_input(nodes, inits, inputs, outputs):
        del nodes[0].input[1:]
    add("conv_one_input.onnx", variant(conv_one_input), 2, "takes 2 to 3 inputs",
        "a Conv without its weight (fuzz_fold read past the node's inputs)")

    def unnamed_input(nodes, inits, inputs, outputs):
        inputs.append(helper.make_tensor_value_info("", TensorProto.FLOAT, [1]))
    add("input_without_name.onnx", variant(unnamed_input), 2, "input 1 has no name",
        "a graph input with no name (fuzz_eval: strcmp on NULL in the evaluator)")

    def empty_graph(nodes, inits, inputs, outputs):
        del nodes[:]
        del inits[:]
        outputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4]))
    add("empty_graph.onnx", variant(empty_graph), 0, "folded 0 of 0",
        "no nodes, the input is the output: valid, nothing folds")


def gen_tensors():
    def zero_len(nodes, inits, inputs, outputs):
        for n in ("scale", "bias", "mean", "var"):
            t = init_named(inits, n)
            t.dims[0] = 0
            t.raw_data = b""
    add("zero_length_bn_params.onnx", variant(zero_len), 0, "kept (shape-mismatch)",
        "BN parameters of length 0 after a Conv with 4 channels: kept, with the reason")

    def zero_len_unused(nodes, inits, inputs, outputs):
        inits.append(tensor("nothing", np.zeros((0, 3), dtype=np.float32)))
    add("zero_length_unused.onnx", variant(zero_len_unused), 0, "folded 1 of 1",
        "an unused 0x3 initializer: valid")

    def raw_short(nodes, inits, inputs, outputs):
        t = init_named(inits, "W")
        t.raw_data = t.raw_data[:-1]
    add("raw_data_short.onnx", variant(raw_short), 2, "raw_data holds 431 bytes",
        "W's raw_data one byte short")

    def raw_long(nodes, inits, inputs, outputs):
        t = init_named(inits, "B")
        t.raw_data = t.raw_data + b"\0\0\0\0"
    add("raw_data_long.onnx", variant(raw_long), 2, "raw_data holds 20 bytes",
        "B's raw_data one element too long")

    def typed_short(nodes, inits, inputs, outputs):
        t = init_named(inits, "scale")
        t.raw_data = b""
        t.ClearField("raw_data")
        t.float_data.extend([1.0, 1.0, 1.0])
    add("float_data_short.onnx", variant(typed_short), 2, "float_data holds 3 values",
        "scale stored in float_data with 3 of 4 values")

    def wrong_field(nodes, inits, inputs, outputs):
        t = init_named(inits, "bias")
        t.ClearField("raw_data")
        t.int64_data.extend([1, 2, 3, 4])
    add("typed_wrong_field.onnx", variant(wrong_field), 2, "not in float_data",
        "a float tensor with its values in int64_data")

    def both(nodes, inits, inputs, outputs):
        init_named(inits, "mean").float_data.extend([0.0] * 4)
    add("raw_and_typed.onnx", variant(both), 2, "both raw_data and float_data",
        "mean holds raw_data and float_data")

    def unknown_dtype(nodes, inits, inputs, outputs):
        init_named(inits, "B").data_type = 99
    add("dtype_unknown.onnx", variant(unknown_dtype), 2, "unknown data type 99",
        "B with data_type 99")

    def string_weight(nodes, inits, inputs, outputs):
        t = init_named(inits, "W")
        t.ClearField("raw_data")
        t.data_type = TensorProto.STRING
        t.string_data.extend([b"w"] * 108)
    add("dtype_string_weight.onnx", variant(string_weight), 2, "needs floating point",
        "a Conv weight of dtype string")

    def int_scale(nodes, inits, inputs, outputs):
        inits[inits.index(init_named(inits, "scale"))] = tensor(
            "scale", np.ones(4, dtype=np.int64))
    add("dtype_int64_bn_scale.onnx", variant(int_scale), 2, "needs floating point",
        "a BN scale of dtype int64")

    def string_raw(nodes, inits, inputs, outputs):
        t = init_named(inits, "B")
        t.data_type = TensorProto.STRING
    add("dtype_string_raw_data.onnx", variant(string_raw), 2, "cannot use raw_data",
        "a string tensor stored as raw_data")

    def const_string(nodes, inits, inputs, outputs):
        inits.remove(init_named(inits, "W"))
        nodes.insert(0, helper.make_node("Constant", [], ["W"], name="wconst",
                                         value_string="oops"))
    add("dtype_constant_string_weight.onnx", variant(const_string), 2, "needs floating point",
        "the Conv weight from a Constant holding a string")

    for what, value, code, frag, why in (
            ("nan", np.nan, 0, "kept (overflow)", "the folded weight would be NaN: kept"),
            ("inf", np.inf, 0, "verified", "scale / sqrt(inf) is 0: folds and checks")):
        def bad_var(nodes, inits, inputs, outputs, value=value):
            t = init_named(inits, "var")
            v = numpy_helper.to_array(t).copy()
            v[1] = value
            t.CopyFrom(tensor("var", v))
        add("%s_bn_var.onnx" % what, variant(bad_var), code, frag,
            "BN variance with %s in channel 1: %s" % (what, why))

    def neg_var(nodes, inits, inputs, outputs):
        t = init_named(inits, "var")
        t.CopyFrom(tensor("var", -np.ones(4, dtype=np.float32)))
    add("negative_bn_var.onnx", variant(neg_var), 0, "kept (overflow)",
        "BN variance -1: sqrt of a negative number would make NaN weights, so the BN stays")

    def nan_weight(nodes, inits, inputs, outputs):
        t = init_named(inits, "W")
        w = numpy_helper.to_array(t).copy()
        w[0, 0, 0, 0] = np.nan
        t.CopyFrom(tensor("W", w))
    add("nan_conv_weight.onnx", variant(nan_weight), 0, "kept (overflow)",
        "a NaN Conv weight: the folded weight would be NaN, so the BN stays")


def gen_attributes():
    def set_attr(node_index, attr):
        def edit(nodes, inits, inputs, outputs):
            node = nodes[node_index]
            kept = [a for a in node.attribute if a.name != attr.name]
            del node.attribute[:]
            node.attribute.extend(kept + [attr])
        return edit

    cases = (
        ("attr_conv_group_float", 0, helper.make_attribute("group", 1.0), "'group' is FLOAT"),
        ("attr_conv_pads_floats", 0, helper.make_attribute("pads", [1.0, 1.0, 1.0, 1.0]),
         "'pads' is FLOATS"),
        ("attr_bn_epsilon_int", 1, helper.make_attribute("epsilon", 1), "'epsilon' is INT"),
        ("attr_bn_epsilon_string", 1, helper.make_attribute("epsilon", "1e-5"),
         "'epsilon' is STRING"),
    )
    for name, idx, attr, frag in cases:
        add(name + ".onnx", variant(set_attr(idx, attr)), 2, frag,
            "attribute %s of the wrong type" % attr.name)

    untyped = helper.make_attribute("group", 1)
    untyped.ClearField("type")
    untyped.ClearField("i")
    add("attr_conv_group_empty.onnx", variant(set_attr(0, untyped)), 2, "without a value",
        "attribute 'group' with neither a type nor a value")

    def gemm_trans_string(nodes, inits, inputs, outputs):
        del nodes[:]
        del inits[:]
        inits.extend([tensor("W", np.ones((4, 3), dtype=np.float32)),
                      tensor("s", np.ones(4, dtype=np.float32)),
                      tensor("b", np.zeros(4, dtype=np.float32))])
        nodes.extend([
            helper.make_node("Gemm", ["X", "W"], ["g"], name="gemm", transB="yes"),
            helper.make_node("BatchNormalization", ["g", "s", "b", "b", "s"], ["Y"], name="bn"),
        ])
        inputs[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3]))
        outputs[0].CopyFrom(helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 4]))
    add("attr_gemm_transB_string.onnx", variant(gemm_trans_string), 2, "'transB' is STRING",
        "Gemm transB given as a string")


def branch(name, nodes, out):
    """An If branch (no inputs) with the given nodes and output out; its
    nodes may read values of the enclosing graphs by name."""
    return helper.make_graph(nodes, name, [],
                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])


def with_if(then_g, else_g, tail=True):
    """BASE with the BN's output renamed 'bn_out', then an If choosing between
    then_g and else_g into 't', then (tail) a Relu from 't' to the graph
    output 'Y'. A branch reading 'Y' depends on the If's own output."""
    def edit(nodes, inits, inputs, outputs):
        nodes[1].output[0] = "bn_out"
        inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
        nodes.append(helper.make_node("If", ["cond"], ["t"], name="if",
                                      then_branch=then_g, else_branch=else_g))
        if tail:
            nodes.append(helper.make_node("Relu", ["t"], ["Y"], name="relu"))
        else:
            outputs[0].name = "t"
    return variant(edit)


def gen_subgraph_cycles():
    # In each refused model the one defect is a cycle: a subgraph reads, by
    # name, a value computed from the output of the node holding it. Where
    # onnx.checker refuses these it is for the node order ("must be
    # topologically sorted"), which bnfold does not require; it accepts
    # cycle_if_branch_output.onnx.
    frag = "its subgraph reads 'Y', which depends on the node's own output"
    defect = "; the defect is the cycle"
    else_g = branch("else", [helper.make_node("Identity", ["bn_out"], ["e"])], "e")
    then_g = branch("then", [helper.make_node("Identity", ["Y"], ["th"])], "th")
    add("cycle_if_branch.onnx", with_if(then_g, else_g), 2, frag,
        "If's then_branch reads 'Y', the Relu of the If's output: a cycle through a "
        "subgraph" + defect)

    inner = helper.make_node(
        "If", ["cond"], ["u"], name="inner_if",
        then_branch=branch("inner_then", [helper.make_node("Identity", ["Y"], ["th2"])], "th2"),
        else_branch=branch("inner_else", [helper.make_node("Identity", ["bn_out"], ["e2"])],
                           "e2"))
    add("cycle_if_nested.onnx", with_if(branch("then", [inner], "u"), else_g), 2, frag,
        "an If inside the then_branch of the main If reads 'Y', which the main graph computes "
        "from the outer If's output: a cycle two subgraph levels down" + defect)

    then_out = branch("then", [], "Y")
    add("cycle_if_branch_output.onnx", with_if(then_out, else_g), 2, frag,
        "then_branch has no node: its output is 'Y' itself, computed from the If's output "
        "(onnx.checker accepts it)" + defect)

    def loop(nodes, inits, inputs, outputs):
        nodes[1].output[0] = "bn_out"
        inits.append(tensor("trips", np.array(2, dtype=np.int64)))
        inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
             helper.make_node("Add", ["x", "Y"], ["x2"])],
            "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("x2", TensorProto.FLOAT, None)])
        nodes.append(helper.make_node("Loop", ["trips", "cond", "bn_out"], ["t"], name="loop",
                                      body=body))
        nodes.append(helper.make_node("Relu", ["t"], ["Y"], name="relu"))
    add("cycle_loop_body.onnx", variant(loop), 2, frag,
        "a Loop body adds 'Y', the Relu of the Loop's own output, to its carried value" +
        defect)

    own = branch("then", [helper.make_node("Identity", ["t"], ["th"])], "th")
    add("cycle_if_reads_own_output.onnx", with_if(own, else_g, tail=False), 2,
        "its subgraph reads 't'",
        "then_branch reads 't', the If's own output" + defect)

    # One level down: inside the main If's then_branch, an inner If whose
    # branch reads a value that branch computes from the inner If's output.
    inner = helper.make_node(
        "If", ["cond"], ["u"], name="inner_if",
        then_branch=branch("inner_then", [helper.make_node("Identity", ["v"], ["th2"])], "th2"),
        else_branch=branch("inner_else", [helper.make_node("Identity", ["bn_out"], ["e2"])],
                           "e2"))
    then_g = branch("then", [inner, helper.make_node("Relu", ["u"], ["v"], name="inner_relu")],
                    "v")
    add("cycle_inside_branch.onnx", with_if(then_g, else_g), 2,
        "node 'inner_if' (If): its subgraph reads 'v'",
        "the cycle lies inside the main If's then_branch: an inner If reads 'v', computed "
        "in that branch from the inner If's output" + defect)

    # Not a cycle: the branches read a value computed before the If (the
    # BN's output, so the BN still folds into the Conv).
    then_ok = branch("then", [helper.make_node("Relu", ["bn_out"], ["th"])], "th")
    else_ok = branch("else", [helper.make_node("Neg", ["bn_out"], ["e"])], "e")
    add("if_reads_earlier_value.onnx", with_if(then_ok, else_ok), 0, "folded 1 of 1",
        "both If branches read 'bn_out', computed before the If, and the Relu after the If "
        "reads its output: no cycle, accepted and folded")

    # Not a cycle either, though listed out of order: the If comes before
    # the node computing 'z', which reads nothing of the If's.
    def later(nodes, inits, inputs, outputs):
        nodes[1].output[0] = "bn_out"
        inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
        nodes.append(helper.make_node(
            "If", ["cond"], ["t"], name="if",
            then_branch=branch("then", [helper.make_node("Relu", ["z"], ["th"])], "th"),
            else_branch=branch("else", [helper.make_node("Neg", ["z"], ["e"])], "e")))
        nodes.append(helper.make_node("Sigmoid", ["bn_out"], ["z"], name="sigmoid"))
        nodes.append(helper.make_node("Relu", ["t"], ["Y"], name="relu"))
    add("if_reads_later_node.onnx", variant(later), 0, "folded 1 of 1",
        "If branches read 'z', computed by a node listed after the If but not from its "
        "output: no cycle, accepted (onnx.checker refuses the node order)")


def nested_if(depth):
    """BASE's graph wrapped in `depth` If nodes (then_branch only), as raw
    protobuf so that building it stays linear in depth."""
    inner = base_model().graph.SerializeToString()
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 4, 4])
    g = inner
    for _ in range(depth):
        attr = field(1, b"then_branch") + field(6, g) + varint(20 << 3) + varint(5)
        node = field(1, b"cond") + field(2, b"Y") + field(4, b"If") + field(5, attr)
        g = field(1, node) + field(2, b"g")
    # Repeated fields may come in any order on the wire: append the outer
    # graph's inputs and output (Python's parser could not read it back).
    g += field(11, cond.SerializeToString())
    g += field(11, base_model().graph.input[0].SerializeToString())
    g += field(12, out.SerializeToString())
    opset = field(8, varint(2 << 3) + varint(OPSET))
    return varint(1 << 3) + varint(8) + field(7, g) + opset


def gen_nesting():
    add("nested_if_70.onnx", nested_if(70), 2, "nested more than 64 deep",
        "70 If bodies inside each other: above the subgraph depth limit")
    add("nested_if_100.onnx", nested_if(100), 2, "nested more than 256 deep",
        "100 If bodies: the wire format itself nests too deep")
    add("nested_if_5000.onnx", nested_if(5000), 2, "nested more than 256 deep",
        "5000 If bodies (protobuf-c would recurse 15000 times and overflow the stack)")
    seq = b""
    for _ in range(400):  # TypeProto.sequence_type(4) -> Sequence.elem_type(1)
        seq = field(4, field(1, seq))
    vi = field(1, b"X") + field(2, seq)
    g = field(11, vi) + field(2, b"g")
    add("nested_sequence_type.onnx",
        varint(1 << 3) + varint(8) + field(7, g) + field(8, varint(2 << 3) + varint(OPSET)),
        2, "nested more than 256 deep", "a value type nesting sequence_type 400 deep")


def gen_external():
    def external(location):
        def edit(nodes, inits, inputs, outputs):
            t = init_named(inits, "W")
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", "0"), ("length", "432")):
                e = t.external_data.add()
                e.key, e.value = k, v
        return edit
    frag = "outside the model's folder"
    add("external_absolute.onnx", variant(external("/etc/passwd")), 2, frag,
        "external data at an absolute location")
    add("external_dotdot.onnx", variant(external("../../../../../../etc/passwd")), 2, frag,
        "external data leaving the model's folder with ../")
    add("external_dotdot_inner.onnx", variant(external("sub/../../hostile.bin")), 2, frag,
        "external data leaving the folder through sub/../../")


def main():
    for name in os.listdir(HERE):
        if name.endswith(".onnx"):
            os.unlink(os.path.join(HERE, name))
    add("base_ok.onnx", BASE, 0, "folded 1 of 1",
        "the model every other one derives from: it must fold")
    gen_bytes_level()
    gen_shapes()
    gen_structure()
    gen_subgraph_cycles()
    gen_tensors()
    gen_attributes()
    gen_nesting()
    gen_external()
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump({"models": ENTRIES}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("%d models in %s" % (len(ENTRIES), HERE))


if __name__ == "__main__":
    main()
