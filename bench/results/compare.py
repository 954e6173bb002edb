# Medians of interleaved runs: python3 bench/results/compare.py <dir> <build> <build>...
# reads <dir>/<build>-<n>.json (the reports `bench --out` wrote, copied there by run).
import json,glob,sys,statistics as st,os
d=sys.argv[1]; builds=sys.argv[2:]
def get(j,path):
    for k in path.split('.'):
        if j is None: return None
        j=j[int(k)] if k.isdigit() else j.get(k)
    return j
fields=[('pgbench tps','baselines.pgbench_median_tps'),
('place p50','latency.0.half_load.placement.p50_ms'),('place p99','latency.0.half_load.placement.p99_ms'),
('kitchen p50','latency.0.half_load.placed_to_kitchen.p50_ms'),('kitchen p99','latency.0.half_load.placed_to_kitchen.p99_ms'),
('light kitchen p50','latency.0.light.placed_to_kitchen.p50_ms'),('light kitchen p99','latency.0.light.placed_to_kitchen.p99_ms'),
('light place p50','latency.0.light.placement.p50_ms'),('light place p99','latency.0.light.placement.p99_ms'),
('cpu total','latency.0.half_load.cpu.with_nats_ms_per_order'),('cpu services','latency.0.half_load.cpu.services_ms_per_order'),
('cpu +pg','latency.0.half_load.cpu.with_postgres_ms_per_order'),
('cpu kitchen','latency.0.half_load.cpu.per_service_ms_per_order.kitchen'),
('commits','latency.0.half_load.cpu.work.commits_total'),('deliveries','latency.0.half_load.cpu.work.deliveries')]
res={}
for b in builds:
    rows=[]
    for f in sorted(glob.glob(f'{d}/{b}-[0-9]*.json')):
        rows.append(json.load(open(f)))
    res[b]=rows
print('%-20s'%'figure'+''.join('%28s'%b for b in builds))
for name,path in fields:
    line='%-20s'%name
    for b in builds:
        vals=[get(r,path) for r in res[b]]
        vals=[v for v in vals if v is not None]
        if not vals: line+='%28s'%'-'; continue
        line+='%28s'%('%.2f [%s]'%(st.median(vals),' '.join('%.1f'%v for v in vals)))
    print(line)
