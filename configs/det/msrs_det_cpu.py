# Detection on the real MSRS benchmark (../shared/data/msrs_det, the stored split's 150 training pairs,
# 640x480) on a 2-core CPU: configs/det/small_cpu.py's tiny YOLO (0.3 M parameters, AdamW 2e-3,
# batch 4, no mosaic) at 320 px for 40 epochs.
#
# Chosen by a rule fixed before any fusion method was compared (benchmarks/msrs_det_detector_choice.py,
# benchmarks/msrs_det_notes.md): each candidate trained on the train part with IR alone and with VI
# alone (seed 0), scored on the VAL part (45 pairs; the test images never predicted); among those whose
# run costs at most 298 CPU s (one thread: 33 runs of the benchmark two at once within 90 minutes),
# the best mean of IR and VI val mAP@0.5 wins. Candidates (val mAP@0.5 IR / VI / mean; CPU s a run, the
# solo estimate it was sized by and as measured two at once on the shared, loaded machine):
#   yolo_tiny 320 px, 40 epochs   27.1 / 19.1 / 23.1   255 / 331   <- chosen
#   yolo_tiny 416 px, 24 epochs   28.2 / 13.3 / 20.7   248 / 279
#   yolov5n   320 px, 13 epochs   18.3 /  7.3 / 12.8   245 / 213
# (The first look of issue 21, this model at 320 px for 30 epochs on a random 8:1:1 split, took 222 s.)
_base_ = ["./small_cpu.py"]

imgsz = 320  # the 640x480 pairs at half size: people stay about 10-60 px tall
epochs = 40
