"""The synthetic generator: seeded street scenes as registered infrared/visible pairs.

Modules by job:

* :mod:`~fusion_perception.synthetic.objects`: what a scene is made of, and the class tables;
* :mod:`~fusion_perception.synthetic.drawing`: noise, shape masks, colour jitter, soft spots;
* :mod:`~fusion_perception.synthetic.shapes`: one drawing function per kind of object;
* :mod:`~fusion_perception.synthetic.background`: sky, buildings, trees, road, lanes, shadows;
* :mod:`~fusion_perception.synthetic.layout`: placement and each object's per-modality signature;
* :mod:`~fusion_perception.synthetic.render`: painting, both cameras, measured visibility;
* :mod:`~fusion_perception.synthetic.dataset`: the M3FD/MSRS-layout writer and the cached default.

Same seed, same bytes: every random number comes from one generator per image, drawn in a fixed
order.

Import what you use from its module; importing this package loads nothing.
"""
