#!/bin/bash
# A/B/C of the encoder's memory layout: 520cc7c (default layout), 5897dc6 (channels last for every body), b6ccde3 (conv only)
for r in 1 2 3; do
  for w in wt2 wt wt3; do
    c=$(git -C /work/$w log --format=%h -1)
    cd /work/$w && PYTHONPATH=/work/$w/src /work/main/.venv/bin/python benchmarks/visual_cost.py --methods bc-mlp diffusion bc-mlp-resnet18 --settings images --batch 64 --no-malloc-probe --work /tmp/ab_$w --out /work/runs/layout/${c}_round$r > /dev/null 2>&1
    rm -rf /tmp/ab_$w
  done
done
echo done
