# Narrow sensing U-Nets for CPU: trains A_i and A_v on the synthetic default in about a
# minute each on two idle cores. The schedule keeps the paper's shape (Adam, step decay)
# but a larger learning rate, since the run lasts a few hundred iterations, not 40 epochs
# of the full MSRS set.
_base_ = ["./paper.py"]

widths = (8, 16, 32, 64, 128)
patch_size = 64
stride = 48
max_patches = 256  # patches (per pseudo-GT method: x len(pseudo_gt) samples)
pseudo_gt = ("mean", "max", "laplacian")
epochs = 6
batch_size = 16
lr = 1e-3
lr_step = 4

model = dict(widths=widths)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pseudo_gt=pseudo_gt, patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(max_epochs=epochs)
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5)]
default_hooks = dict(logger=dict(interval=10))
