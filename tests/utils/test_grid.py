"""Sample grids: layout, magnification and the float → uint8 mapping."""
import numpy as np

from t2i.utils import images


def test_to_uint8_maps_unit_range_exactly():
    np.testing.assert_array_equal(images.to_uint8(np.array([-1.0, 1.0, 0.0, -2.0, 2.0])), [0, 255, 128, 0, 255])


def test_grid_places_each_image_and_magnifies_by_pixel_repetition():
    batch = np.stack([np.full((2, 2, 3), value, np.uint8) for value in (10, 20, 30)])
    batch[0, 0, 0] = 99
    grid = images.make_grid(batch, columns=2, padding=1, scale=2)
    assert grid.shape == (1 + 2 * 5, 1 + 2 * 5, 3)
    np.testing.assert_array_equal(grid[1:3, 1:3, 0], np.full((2, 2), 99))  # one source pixel → 2×2 block
    assert grid[1 + 2, 1 + 2, 0] == 10 and grid[1, 6, 0] == 20 and grid[6, 1, 0] == 30
    assert grid[6, 6, 0] == 0  # the empty fourth cell stays padding


def test_heatmaps_show_their_maximum():
    heat = np.zeros((1, 2, 2, 18), np.uint8)
    heat[0, 1, 1, 7] = 200
    grid = images.make_grid(heat, padding=0)
    assert grid.shape == (2, 2, 1) and grid[1, 1, 0] == 200 and grid[0, 0, 0] == 0


def test_display_scale_targets_about_128_pixels():
    assert [images.display_scale(s) for s in (32, 64, 128, 256)] == [4, 2, 1, 1]
