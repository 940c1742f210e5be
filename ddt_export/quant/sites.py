"""Where a DDT graph's quantisable matmuls sit: every MatMul/Gemm of an exported encoder or decoder mapped to one named
site group (from the exporter's module scopes), the unit quantize.py measures sensitivity on and keeps in float."""

from __future__ import annotations

import ast

import onnx

QUANTISED_OPS = ("MatMul", "Gemm")

# Site groups, each named after what it computes. Every MatMul/Gemm of a DDT graph is in exactly one.
SITES = {
    "timestep_embedder": "t_embedder MLP (B x 256 -> D): a GEMV per sample",
    "patch_embedding": "x_embedder / s_embedder: patch -> token linear",
    "encoder_adaln": "encoder adaLN Linear(D, 6D) on c = silu(t_emb + y_emb): per sample (B x 1 x D)",
    "decoder_adaln": "decoder adaLN Linear(D, 6D) on s: per token (B x N x D)",
    "qkv": "attention qkv Linear(D, 3D)",
    "attention_scores": "attention Q K^T (activation x activation)",
    "attention_values": "attention softmax(Q K^T) V (activation x activation)",
    "attention_proj": "attention output Linear(D, D)",
    "swiglu_w1_w3": "SwiGLU first matmuls w1 x, w3 x",
    "swiglu_w2": "SwiGLU second matmul, input silu(w1 x) * w3 x",
    "final_adaln": "final layer adaLN Linear(D, 2D) on s, per token",
    "final_linear": "final layer Linear(D, C p^2)",
}


def _scopes(node: onnx.NodeProto) -> list[str]:
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        return list(ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]")))
    except (ValueError, SyntaxError):
        return []


def site_of(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], num_encoder_blocks: int) -> str | None:
    """The site group of a MatMul/Gemm node, from the exporter's module scopes (None: not a DDT site)."""
    path = " ".join(_scopes(node))
    if "t_embedder" in path:
        return "timestep_embedder"
    if "x_embedder" in path or "s_embedder" in path:
        return "patch_embedding"
    if "final_layer.adaLN_modulation" in path:
        return "final_adaln"
    if "final_layer.linear" in path:
        return "final_linear"
    if "adaLN_modulation" in path:
        block = int(path.split("blocks.")[1].split(".")[0].split()[0])
        return "encoder_adaln" if block < num_encoder_blocks else "decoder_adaln"
    if "attn.qkv" in path:
        return "qkv"
    if "attn.proj" in path:
        return "attention_proj"
    if "mlp.w2" in path:
        return "swiglu_w2"
    if "mlp.w1" in path or "mlp.w3" in path:
        return "swiglu_w1_w3"
    if "scaled_dot_product_attention" in path:
        return "attention_values" if _after_softmax(node.input[0], producers) else "attention_scores"
    return None


def _after_softmax(name: str, producers: dict[str, onnx.NodeProto], depth: int = 4) -> bool:
    node = producers.get(name)
    for _ in range(depth):
        if node is None:
            return False
        if node.op_type == "Softmax":
            return True
        node = producers.get(node.input[0]) if node.input else None
    return False


def site_nodes(model: onnx.ModelProto, num_encoder_blocks: int) -> dict[str, list[str]]:
    """{site: [node names]} over the graph's MatMul/Gemm nodes; every one must belong to a site."""
    producers = {o: n for n in model.graph.node for o in n.output}
    out: dict[str, list[str]] = {}
    for n in model.graph.node:
        if n.op_type in QUANTISED_OPS:
            site = site_of(n, producers, num_encoder_blocks)
            if site is None:
                raise RuntimeError(f"{n.name} ({n.op_type}) belongs to no known site; update quantize.SITES")
            out.setdefault(site, []).append(n.name)
    return out
