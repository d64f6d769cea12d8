#!/usr/bin/env python3
"""Where a session's run time goes, from an ONNX Runtime profile (a trace `in-process stages` writes
with PROFILE_DIR set): milliseconds per run by operator type, the forward's nodes and the backward's
(named backward::...) apart; with --nodes, by node (optionally of one operator type), largest first.

Usage: bench/ort_trace.py TRACE.json [--nodes [OP_TYPE]]
"""
import collections
import json
import sys


def main(path, nodes=False, op_type=None):
    events = json.load(open(path))
    runs = sum(1 for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    if runs == 0:
        sys.exit(f'{path}: no runs')
    run_ms = sum(e['dur'] for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run') / runs / 1000
    by_op, by_node, count, shape = collections.Counter(), collections.Counter(), collections.Counter(), {}
    forward = backward = 0.0
    for e in events:
        if e.get('cat') != 'Node' or not e['name'].endswith('_kernel_time'):
            continue
        name, op = e['name'][:-len('_kernel_time')], e['args'].get('op_name')
        by_op[op] += e['dur']
        count[op] += 1
        by_node[(name, op)] += e['dur']
        shape[name] = e['args'].get('output_type_shape')
        if name.startswith('backward::'):
            backward += e['dur']
        else:
            forward += e['dur']
    per_run = lambda us: us / runs / 1000
    print(f'{runs} runs, {run_ms:.2f} ms a run; kernels: forward {per_run(forward):.2f} ms, backward {per_run(backward):.2f} ms')
    if nodes:
        for (name, op), us in by_node.most_common():
            if op_type is None or op == op_type:
                print(f'{per_run(us):7.3f} ms  {op:16s} {name[:64]:64s} {shape[name]}')
    else:
        for op, us in by_op.most_common():
            print(f'{per_run(us):7.2f} ms  {op:20s} {count[op] // runs} nodes')


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help'):
        sys.exit(__doc__)
    args = sys.argv[2:]
    main(sys.argv[1], nodes='--nodes' in args, op_type=args[1] if len(args) > 1 and args[0] == '--nodes' else None)
