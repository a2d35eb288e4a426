"""VideoCUPS stage 2 (paper Sec. 3.2): a Panoptic Cascade MaskTrack R-CNN trained on pseudo-labels.

Modules: :mod:`.targets` (what a training clip holds), :mod:`.network` (the model),
:mod:`.losses` (detection, mask, semantic and tracking losses with Video DropLoss, Eq. 3),
:mod:`.copy_paste` (video copy-paste, plain and self-enhanced), :mod:`.trainer` (the training
loop), :mod:`.data` (clips of pseudo-labelled frames), :mod:`.predict` (streaming inference).
Importing this package imports ``torch`` (the ``methods`` extra).
"""
