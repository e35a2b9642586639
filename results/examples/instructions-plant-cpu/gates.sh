#!/bin/bash
# Ten one-process gates against the planted clone and ten against the unchanged one, alternating.
cd /work/main
for i in $(seq 1 10); do
  for c in A B; do
    t0=$SECONDS
    .venv/bin/python -m bench gate --base HEAD --tree /tmp/plant$c --framework numpy --json /tmp/plant-out/$c-$i.json --out /tmp/plant-out/runs-$c-$i > /tmp/plant-out/$c-$i.log 2>&1
    echo "$c $i rc=$? wall=$((SECONDS - t0))" >> /tmp/plant-out/progress.log
  done
done
