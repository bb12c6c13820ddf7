"""fusion_perception: does this infrared-visible fusion method help the detector and the segmenter?"""

__version__ = "0.1.0"
