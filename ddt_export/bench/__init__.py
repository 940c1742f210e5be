"""`ddt-bench`: what the runtime achieves against what the arithmetic allows.

flops    multiply-adds of each graph, counted from the architecture
ceiling  the machine's measured matmul rate (fp32, bf16), the yardstick for FLOP/s
machine  what the numbers were measured on (CPU, cores, load)
latency  the timed sampling loop per sharing ratio, the PyTorch references (latency_result: the ideals, the result)
report   the rich table; plot: the PNG
precision  int8 against OpenVINO bf16 and onnxruntime fp32, timed in one process
quality  sample quality vs sharing ratio and precision: the run (quality_rows: one configuration sampled and
         judged; quality_compare: the paired bootstrap comparisons; quality_report: table and plot; judges)
"""
