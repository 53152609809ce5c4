"""Large-backlog read benchmark: how fast can the newest page of a big room be read?

Run ``python -m benchmarks`` (full), ``--quick`` or ``--smoke``. The harness starts its own
nats-server, fills real streams whose config comes from
``roomkeeper.core.stream_config_for_room`` (R8), times each read strategy against the same
data in the same run, and writes a markdown table, a JSON file and a PNG plot to
``benchmarks/results/``.
"""
