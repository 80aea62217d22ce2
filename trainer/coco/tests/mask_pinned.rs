//! mask.rs against pycocotools without Python: pinned outputs of pycocotools 2.0.11.
//!
//! The expected strings, areas and boxes were obtained once with the venv of
//! `scripts/coco/install` (pycocotools 2.0.11, numpy 2.x) by running, for each polygon list
//! `polys` below on a 20 × 30 (height × width) image:
//!
//! ```python
//! r = pycocotools.mask.merge(pycocotools.mask.frPyObjects(polys, 20, 30))
//! (r["counts"].decode(), int(pycocotools.mask.area(r)), list(pycocotools.mask.toBbox(r)))
//! ```
//!
//! and for the random mask `pycocotools.mask.encode(np.asfortranarray(m))` with
//! `m = (np.random.RandomState(7).rand(20, 30) > 0.6).astype(np.uint8)`, drawn below row by row.
//! `tests/pycocotools_crosscheck.rs` compares many more polygons with a live pycocotools.

use flow_coco::mask::Rle;

const H: u32 = 20;
const W: u32 = 30;

/// Rasterises `polys`, then checks pycocotools' compressed string, area and box, and that the
/// string decodes back to the same runs.
fn check_polygons(polys: &[Vec<f64>], counts: &str, area: u64, bbox: [f64; 4]) {
    let rle = Rle::from_polygons(polys, H, W);
    assert_eq!(
        rle.to_compressed(),
        counts,
        "compressed counts of {polys:?}"
    );
    assert_eq!(rle.area(), area, "area of {polys:?}");
    assert_eq!(rle.to_bbox(), bbox, "bbox of {polys:?}");
    rle.validate().expect("runs cover the image");
    assert_eq!(
        Rle::from_compressed(counts, H, W).expect("pycocotools string parses"),
        rle
    );
}

/// pycocotools' rasterisation of a triangle with fractional vertices.
#[test]
fn polygon_triangle_matches_pycocotools() {
    check_polygons(
        &[vec![2.3, 1.7, 25.9, 4.2, 10.1, 18.6]],
        "n12b02N2N3M2N2O1N1OO1O100O1O1O1O1O2N1O1O1O1O1O10\\2",
        186,
        [3.0, 2.0, 23.0, 16.0],
    );
}

/// pycocotools' rasterisation of a concave pentagon (the notch splits columns into two runs).
#[test]
fn polygon_concave_matches_pycocotools() {
    check_polygons(
        &[vec![1.0, 1.0, 28.0, 1.0, 28.0, 18.0, 15.0, 6.0, 1.0, 18.0]],
        "e0`0400O1O1O1O1O1O100O1O1O1O1O1001O1O1O1O1O1O1O1O1O1O1O0W1",
        294,
        [1.0, 1.0, 27.0, 16.0],
    );
}

/// pycocotools' rasterisation of a triangle reaching past every border of the image (clipped as pycocotools clips).
#[test]
fn polygon_border_matches_pycocotools() {
    check_polygons(
        &[vec![-3.2, -2.5, 34.1, 5.0, 12.0, 25.7]],
        "04`02N2N2N2N1O2N2N2NY10gN000000001O000O1O1O2N1O1O1O1O2N1O1OM",
        416,
        [0.0, 0.0, 30.0, 20.0],
    );
}

/// pycocotools' rasterisation of a two-part polygon whose parts overlap (rasterised separately, then merged).
#[test]
fn polygon_two_parts_matches_pycocotools() {
    check_polygons(
        &[
            vec![0.5, 0.5, 8.5, 0.5, 8.5, 8.5, 0.5, 8.5],
            vec![6.0, 6.0, 20.0, 7.0, 14.0, 19.2],
        ],
        "e08<00000000000014MN1O2N2O0O00N2N2N2N2NS6",
        145,
        [1.0, 1.0, 19.0, 17.0],
    );
}

/// pycocotools' rasterisation of a sliver thinner than a pixel (only the columns whose centre row it covers).
#[test]
fn polygon_thin_matches_pycocotools() {
    check_polygons(
        &[vec![3.0, 3.0, 27.0, 3.4, 27.0, 3.6, 3.0, 3.2]],
        "W=1c0000000000i1",
        6,
        [21.0, 3.0, 6.0, 1.0],
    );
}

/// The random mask of the module doc, row by row ('#' = foreground).
const RANDOM_ROWS: [&str; 20] = [
    ".#.##.....##...#..#.##..#..##.",
    ".....##.....#..#.#.#..#....#.#",
    "##....###.#...#........##..###",
    "##.#..##.#..#..###.....###..#.",
    "...##..##..##..##.##....#.....",
    "..#....##..##.####....#.#.....",
    "..#.....##......#.#.#.###.###.",
    "##...####.....#...###.#.#...#.",
    "#.##.#.#..#....#.#..#..#..#.##",
    "...#...#.#.#..#.#.......#....#",
    "#..#...###.####....#.#.#....#.",
    "#..#.#.#..#.##.##...#..##.#.#.",
    ".####............#.##..#.##.##",
    ".#.#.#...##...#.##...###....#.",
    "######.#...##..##.......##...#",
    "....##.#....###.......###.....",
    "##..#.....#.#.##..#.#..#.#....",
    "...##.##..#..##.###........#.#",
    "###..##.#.....#..........#....",
    "..#.#..###.##..#.###....##....",
];

/// Encoding a dense mask gives pycocotools' string, and the string decodes to the same mask.
#[test]
fn random_mask_string_codec_matches_pycocotools() {
    let mut mask = vec![0u8; (H * W) as usize];
    for (r, row) in RANDOM_ROWS.iter().enumerate() {
        for (c, ch) in row.bytes().enumerate() {
            mask[c * H as usize + r] = u8::from(ch == b'#');
        }
    }
    let expected = "2230N01OO00000012O12MN0051KO20N022OO15OJ001040J30M0041MOO21N021N61J2N11MOO0010O31M51LOO0010O31LO40M0O0110O11000O10M0023ON10N81ION030N0O0011OO30N011N0000O01013OMO0011O10N00010110ON12ON170IO00100000O051O1MO1O0060I050L22NL051LOO0030N2ON50K00111O0050I000015OK01151LN70H0O111O16NN0MOO0100";
    let rle = Rle::encode(&mask, H, W);
    assert_eq!(rle.to_compressed(), expected);
    assert_eq!(rle.area(), 233);
    assert_eq!(rle.to_bbox(), [0.0, 0.0, 30.0, 20.0]);
    let parsed = Rle::from_compressed(expected, H, W).expect("pycocotools string parses");
    assert_eq!(parsed.decode(), mask);
}

/// Masks survive encode → string → parse → decode whatever their runs (long runs, runs at the
/// borders, masks that are all background or all foreground).
#[test]
fn string_codec_round_trips_generated_masks() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for case in 0..200u64 {
        let (h, w) = (1 + (case % 17) as u32, 1 + (case % 23) as u32);
        let density = case % 5;
        let mask: Vec<u8> = (0..h * w)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                u8::from(state % 5 < density)
            })
            .collect();
        let rle = Rle::encode(&mask, h, w);
        let back = Rle::from_compressed(&rle.to_compressed(), h, w).expect("own string parses");
        assert_eq!(back, rle, "case {case}");
        assert_eq!(back.decode(), mask, "case {case}");
        assert_eq!(rle.area(), mask.iter().map(|&v| v as u64).sum::<u64>());
    }
}
