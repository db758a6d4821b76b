"""Adaptation on analog hardware: digital LoRA adapters and hardware-aware training (AHWA).

Modules: `periphery` (differentiable tile twin), `twin` (models built from it), `lora`
(adapters), `losses`, `data` (training batches), `train` (the seeded, resumable loop for
both methods), `files` (adapter files), `graph` (adapters as digital ops for the timing
model) and `cost` (latency/energy overhead and adaptation cost). See docs/adaptation.md.
"""
