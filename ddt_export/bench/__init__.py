"""`ddt-bench`: what the runtime achieves against what the arithmetic allows.

flops    multiply-adds of each graph, counted from the architecture
ceiling  the machine's measured matmul rate (fp32, bf16), the yardstick for FLOP/s
machine  what the numbers were measured on (CPU, cores, load)
latency  the timed sampling loop per sharing ratio, the PyTorch references, the ideals
report   the rich table; plot: the PNG
"""
