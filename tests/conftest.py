"""What every test shares: ``ROOT``, the repository (``from conftest import ROOT``), and the l2ood
library on the import path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
