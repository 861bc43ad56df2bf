"""Dense transfer: segmentation and detection heads trained on a frozen (adapted) encoder, and
zero-shot similarity maps, with their metrics."""
