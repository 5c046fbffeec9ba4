"""svconv: compute and control the singular values of convolutional layers.

The core library; it never imports ``bench``, ``sweeps`` or ``analysis``.
"""

__version__ = "0.1.0"
