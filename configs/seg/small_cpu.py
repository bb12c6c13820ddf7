# Small segmentation protocol for CPUs (the demo and the tests): the paper recipe's structure
# (DeepLabV3+, cross-entropy, SGD with cosine decay, mmengine Runner) scaled down to run in well
# under a minute on 2 cores on the synthetic default (150 train / 50 test at 320x256):
# a MobileNetV3-small encoder (timm, built from scratch) with a slim decoder, images at half
# resolution, 10 epochs, no frozen phase (a randomly initialised encoder gains nothing from it).
# Scores are still computed at the labels' full resolution (logits are upsampled).
# Beyond the paper: square-root median-frequency class weights in the cross-entropy
# (class_weight='auto'), so the small classes are learnt within a few epochs.
_base_ = ['./deeplabv3plus_r50_msrs.py']

max_epochs = 10
frozen_epochs = 0
batch_size = 8
crop_size = (128, 160)  # (height, width) after downscaling by ~0.5

model = dict(
    encoder_name='tu-mobilenetv3_small_100',
    test_scale=0.5,
    class_weight='auto',
    arch_kwargs=dict(encoder_output_stride=16, decoder_channels=64, decoder_atrous_rates=(6, 12, 18)),
)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,  # 2 shared cores: worker processes cost more than they save here
    dataset=dict(augment=dict(crop_size=crop_size, scale_range=(0.4, 0.6), hflip_prob=0.5), cache=True),
)
test_dataloader = dict(batch_size=8, num_workers=0)
val_dataloader = None
val_cfg = None
val_evaluator = None

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs + 1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=0.0, convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, by_epoch=True, max_keep_ckpts=1,
                    save_last=True),
)
custom_hooks = [
    dict(type='SegEpochSeedHook'),
    dict(type='SegFreezeEncoderHook', frozen_epochs=frozen_epochs),
]
