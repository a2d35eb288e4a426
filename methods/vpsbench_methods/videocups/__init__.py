"""VideoCUPS (paper Sec. 3): video panoptic pseudo-labels from motion, depth and SSL features."""
