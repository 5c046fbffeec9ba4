"""Per-layer control of singular values, in place, in the idiom of ``torch.nn.utils.clip_grad_norm_``.

Each function edits one conv (``nn.Conv2d``/``nn.Conv3d``), TT (``svconv.tt``) or ``nn.Linear`` layer
after an optimiser step and returns a :class:`ControlResult` (``sigma_after``, ``target``, ``passes``,
``rel_change``, ``level``)::

    for conv, size in convs_and_input_sizes:
        result = svconv.control.clip_(conv, 1.0, size, tol=0.01)

``clip_`` (exact clipping to a tolerance), ``divide_`` (Gouk et al. 2021), ``fastclip_`` and ``clip_bn_``
(Boroojeny et al. 2024), ``gram_rescale_`` (Delattre et al. 2023). ``svconv.methods`` runs them over a model
during training; ``clip_model_`` clips every supported layer of any model once (``model_norms`` measures
them), finding each layer's input size with one forward pass.
"""

from svconv.control.clip import clip_
from svconv.control.divide import divide_, divide_bn_
from svconv.control.fastclip import clip_bn_, fastclip_, project_top_k_
from svconv.control.gram import gram_bound, gram_rescale_
from svconv.control.layer import controlled_kind, exact_norm
from svconv.control.model import LayerClip, clip_model_, model_norms, supported_layers
from svconv.control.result import ControlResult

__all__ = [
    "ControlResult",
    "LayerClip",
    "clip_model_",
    "model_norms",
    "supported_layers",
    "clip_",
    "clip_bn_",
    "divide_",
    "divide_bn_",
    "exact_norm",
    "fastclip_",
    "gram_bound",
    "gram_rescale_",
    "controlled_kind",
    "project_top_k_",
]
