# Detection on M3FD, the EMMA paper's recipe (Table 3): YOLOv5-s, SGD, lr 1e-2, batch 8,
# 400 epochs, 640 px, random 8:1:1 split by seed, mAP@0.5 (pycocotools) on the test split.
# Used by tools/train_det.py when no --config is given.

# ultralytics' packaged cfg (ultralytics/cfg/models/v5/yolov5.yaml at scale s), built from
# scratch: nothing is downloaded. A local .pt (or --det-weights) starts from weights instead.
model = "yolov5s.yaml"
epochs = 400
batch = 8  # total over all GPUs under DDP (ultralytics divides it)
imgsz = 640
optimizer = "SGD"
lr0 = 1e-2
workers = 8
split_ratio = (8, 1, 1)

# Passed to ultralytics' train() as they are; ultralytics' defaults otherwise
# (momentum 0.937, weight decay 5e-4, 3 warm-up epochs, mosaic closed for the last 10 epochs).
train_args = dict(patience=100, close_mosaic=10, cos_lr=False)

# Scoring: low confidence threshold, as for mAP; NMS IoU and max detections as ultralytics' val.
eval_args = dict(conf=0.001, iou=0.7, max_det=300, batch=8)

# predictions.png: the first test images with boxes scoring at least vis["conf"].
vis = dict(num_images=4, conf=0.25)
