# A small CPU detection run for the demo and tests: a tiny YOLOv8-style model at 256 px, ten
# epochs on the synthetic default (200 pairs at 320x256, so 160 training images), about 45 s
# on two idle CPU cores. Same protocol as the paper's recipe (random 8:1:1 split by seed,
# pycocotools mAP on the test split); only the model and optimiser schedule are scaled down.
_base_ = ["./yolov5s_m3fd.py"]

model = "yolo_tiny.yaml"  # beside this file
epochs = 10
batch = 4
imgsz = 256  # the 320x256 scenes at 0.8x: objects stay tens of pixels tall
# From scratch in ~400 steps, AdamW at 2e-3 learns much faster and steadier than the paper's
# SGD at 1e-2 (measured on the synthetic default: val mAP@0.5 ~0.4 against ~0.15 at 10-12 epochs).
optimizer = "AdamW"
lr0 = 2e-3
workers = 0  # two cores: data loading in the main process is as fast and starts at once

# Short training: no warm-up (ultralytics' minimum is 100 iterations), one optimiser step per
# batch (nbs = batch: no gradient accumulation up to 64), no mosaic, no per-epoch validation
# (ultralytics still validates the last epoch), decoded images kept in RAM.
train_args = dict(warmup_epochs=0, nbs=4, mosaic=0.0, close_mosaic=0, val=False, patience=100, cos_lr=False,
                  cache="ram")
eval_args = dict(conf=0.001, iou=0.7, max_det=300, batch=16)
vis = dict(num_images=4, conf=0.25)
