# Segmentation on MSRS, the EMMA paper's recipe (Table 4): DeepLabV3+ with a ResNet-50 encoder,
# cross-entropy, SGD lr 7e-3 with cosine decay, batch 8, 340 epochs, encoder frozen for the
# first 100, MSRS's own train/test split, IoU per class (unlabelled included) and mIoU.
# Used by tools/train_seg.py when a GPU is present and no --config is given.
# Data paths, work_dir, seed and the prediction folder are filled in by
# fusion_perception.segmentation.task.run_segmentation.

num_classes = 9
ignore_index = 255
max_epochs = 340
frozen_epochs = 100
batch_size = 8  # total; divided by the number of processes under DDP (--launcher pytorch)
crop_size = (480, 640)  # (height, width): MSRS's full frame

model = dict(
    type='SegSmpModel',
    arch='DeepLabV3Plus',
    encoder_name='resnet50',
    encoder_weights=None,  # or a local .pth (--encoder-weights); never downloaded
    num_classes=num_classes,
    ignore_index=ignore_index,
    test_scale=1.0,
    arch_kwargs=dict(encoder_output_stride=16, decoder_channels=256),
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=False,  # workers must see the epoch set by SegEpochSeedHook
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='seg_collate', ignore_index=ignore_index),
    dataset=dict(
        type='MSRSSegDataset', root=None, split='train', num_classes=num_classes,
        ignore_index=ignore_index, seed=0,
        augment=dict(crop_size=crop_size, scale_range=(0.5, 2.0), hflip_prob=0.5)),
)
test_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='seg_collate', ignore_index=ignore_index),
    dataset=dict(type='MSRSSegDataset', root=None, split='test', num_classes=num_classes,
                 ignore_index=ignore_index, augment=None),
)
# MSRS has no validation split: the test split is watched during training (monitoring only;
# the reported scores are those of the final checkpoint, no best-checkpoint selection).
val_dataloader = test_dataloader
test_evaluator = dict(type='SegIoUMetric', num_classes=num_classes, ignore_index=ignore_index,
                      pred_dir=None, num_pred_images=4)
val_evaluator = dict(type='SegIoUMetric', num_classes=num_classes, ignore_index=ignore_index)

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=20)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',  # AmpOptimWrapper with --amp
    optimizer=dict(type='SGD', lr=7e-3, momentum=0.9, weight_decay=1e-4),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=0.0, convert_to_iter_based=True),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, by_epoch=True, max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    dict(type='SegEpochSeedHook'),
    dict(type='SegFreezeEncoderHook', frozen_epochs=frozen_epochs),
]

# Frozen encoder parameters get no gradient for 100 epochs: DDP must be told some are unused.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
sync_bn = 'torch'  # per-GPU batches are small under DDP

env_cfg = dict(cudnn_benchmark=True,  # fixed crop and test sizes
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=False)
log_processor = dict(by_epoch=True)
log_level = 'INFO'
