"""Readers and writers of the label-map formats vpsbench meets, bit-exact and atomic.

Reference list (name — extension — encoding — where it is used):

* PNG label map — ``.png`` — uint8 gray / palette indices, uint8 RGB, uint16 gray — basis of all
  PNG codecs below (:mod:`~vpsbench.formats.png`).
* STEP — ``.png`` — RGB, R = semantic (255 void), instance = G*256 + B — KITTI-STEP and
  MOTChallenge-STEP ground truth, DeepLab2 predictions (:mod:`~vpsbench.formats.step`).
* COCO panoptic — ``.png`` + ``.json`` — RGB id = R + 256*G + 65536*B (0 = VOID) plus
  ``segments_info`` — Cityscapes-VPS (VPSNet) ground truth and ``pan_pred/`` + ``pred.json``
  predictions (:mod:`~vpsbench.formats.coco_panoptic`).
* MOTS text — ``.txt`` — ``time obj_id class_id height width rle`` (pycocotools compressed RLE),
  obj_id = class*1000 + k, 10000 ignore — MOTSChallenge / KITTI-MOTS ``instances_txt`` and
  tracker results (:mod:`~vpsbench.formats.mots`).
* MOTS PNG — ``.png`` — uint16 gray, class*1000 + k, 0 background, 10000 ignore —
  MOTSChallenge / KITTI-MOTS ``instances/`` (:mod:`~vpsbench.formats.mots`).
* Divisor PNG — ``.png`` — uint16 gray, semantic*divisor + instance (divisor 1000) — Waymo
  PVPS ``panoptic_label`` (:mod:`~vpsbench.formats.divisor_png`).
* Label PNG — ``.png`` — single-channel 8/16-bit ids — Waymo-style separate semantic / instance
  maps, ``num_cameras_covered`` (:mod:`~vpsbench.formats.divisor_png`).
* Cityscapes instanceIds — ``.png`` — uint16 gray, labelId (stuff, groups) or labelId*1000 + k —
  Cityscapes ``*_gtFine_instanceIds.png`` (:mod:`~vpsbench.formats.cityscapes_ids`).
* NPZ frame — ``.npz`` — int32 ``semantic`` and ``instance`` arrays — predictions with more than
  255 pseudo-classes or semantic -1 = no prediction (:mod:`~vpsbench.formats.npz`).

Instance 0 always means "no instance". Where a format numbers instances from 0 (MOTS, Cityscapes)
the decoded instance is that number + 1. Every reader raises :class:`~vpsbench.errors.InputError`
naming the file; every writer replaces its target atomically.
"""

from __future__ import annotations

from vpsbench.formats.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from vpsbench.formats.cityscapes_ids import (
    decode_cityscapes_instance_ids,
    read_cityscapes_instance_ids,
)
from vpsbench.formats.coco_panoptic import (
    PanopticAnnotation,
    PanopticJson,
    SegmentInfo,
    decode_coco_panoptic,
    encode_coco_panoptic,
    id_to_rgb,
    read_coco_panoptic_png,
    read_panoptic_json,
    rgb_to_id,
    write_coco_panoptic_png,
    write_panoptic_json,
)
from vpsbench.formats.divisor_png import (
    read_divisor_png,
    read_label_png,
    write_divisor_png,
    write_label_png,
)
from vpsbench.formats.mots import (
    MotsObject,
    frame_to_mots_objects,
    mots_objects_to_frame,
    read_mots_png,
    read_mots_txt,
    write_mots_png,
    write_mots_txt,
)
from vpsbench.formats.npz import read_npz, write_npz
from vpsbench.formats.png import read_png, write_png
from vpsbench.formats.step import decode_step, encode_step, read_step_png, write_step_png

__all__ = [
    "MotsObject",
    "PanopticAnnotation",
    "PanopticJson",
    "SegmentInfo",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "decode_cityscapes_instance_ids",
    "decode_coco_panoptic",
    "decode_step",
    "encode_coco_panoptic",
    "encode_step",
    "frame_to_mots_objects",
    "id_to_rgb",
    "mots_objects_to_frame",
    "read_cityscapes_instance_ids",
    "read_coco_panoptic_png",
    "read_divisor_png",
    "read_label_png",
    "read_mots_png",
    "read_mots_txt",
    "read_npz",
    "read_panoptic_json",
    "read_png",
    "read_step_png",
    "rgb_to_id",
    "write_coco_panoptic_png",
    "write_divisor_png",
    "write_label_png",
    "write_mots_png",
    "write_mots_txt",
    "write_npz",
    "write_panoptic_json",
    "write_png",
    "write_step_png",
]
