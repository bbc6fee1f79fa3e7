"""Readers: exact records on small files, one-line errors on bad input, counts on the real data."""

import contextlib
import pathlib

import numpy as np
import pytest

from kgax.data import io, movielens
from kgax.data.kgat import read_kgat, write_kgat
from kgax.data.movielens import read_movielens
from kgax.data.recbole import read_recbole
from kgax.data.types import DataError


def write(folder: pathlib.Path, **files: str) -> pathlib.Path:
  """Writes files named by the keywords ("train_txt" -> train.txt, "x__inter" -> x.inter)."""
  folder.mkdir(parents=True, exist_ok=True)
  for key, text in files.items():
    (folder / key.replace("__", ".").replace("_txt", ".txt")
     .replace("_csv", ".csv")).write_text(text)
  return folder


@contextlib.contextmanager
def bad(match: str):
  """Expects a one-line DataError matching `match`, with no chained pandas error."""
  with pytest.raises(DataError, match=match) as info:
    yield
  assert "\n" not in str(info.value)
  assert info.value.__cause__ is None
  assert info.value.__context__ is None or info.value.__suppress_context__


def facts(ds) -> set:
  """Aux facts as {(owner, is_user, "attr=value", weight)}."""
  a = ds.aux
  return {(int(o), bool(u), a.node_names[n], round(float(w), 4))
          for o, u, n, w in zip(a.owner, a.owner_is_user, a.node, a.weight)}


# --- KGAT -----------------------------------------------------------------------------------------

KGAT = dict(train_txt="0 1 2 2\n1\n2 0 1\n", test_txt="0 1 3\n2 1 1\n",
            kg_final_txt="0 0 4\n3 1 5\n0 0 4\n")


def test_kgat_records(tmp_path):
  ds = read_kgat(write(tmp_path / "k", **KGAT))
  np.testing.assert_array_equal(ds.interactions, [[0, 1], [0, 2], [2, 0], [2, 1]])
  np.testing.assert_array_equal(ds.test, [[0, 1], [2, 1]])   # item 3 is not in train.txt
  np.testing.assert_array_equal(ds.kg, [[0, 0, 4], [3, 1, 5]])
  assert (ds.name, ds.n_users, ds.n_items, ds.n_entities) == ("k", 3, 3, 6)   # 3: an entity
  assert ds.relation_names == ("0", "1") and ds.presplit
  assert ds.notes == ("train.txt: 4 (user, item) pairs, dropped 1 duplicates",
                      "test.txt: dropped 1 pairs whose user or item is beyond those of train.txt "
                      "(users < 3, items < 3)",
                      "test.txt: 2 (user, item) pairs, dropped 1 duplicates",
                      "2 test pairs also in train (kept in test)",
                      "kg_final.txt: 2 triples, dropped 1 duplicates")


def test_kgat_id_lists(tmp_path):
  folder = write(tmp_path / "k", **KGAT,
                 user_list_txt="org_id remap_id\nu0 0\nu2 2\nu1 1\nu3 3\n",
                 item_list_txt="org_id remap_id freebase_id\na 0 m.a\nb 1 m.b\nc 2 m.c\nd 3 m.d\n",
                 entity_list_txt="org_id remap_id\nm.a 0\nm.b 1\nm.c 2\nm.d 3\nTwo words 4\n 5\n"
                                 "m.g 6\n",
                 relation_list_txt="org_id remap_id\nhas 0\nin 1\nspare 2\n")
  ds = read_kgat(folder)
  assert ds.n_users == 4 and ds.n_entities == 7
  assert list(ds.user_ids) == ["u0", "u1", "u2", "u3"]
  assert list(ds.item_ids) == ["a", "b", "c", "d"]
  assert list(ds.entity_ids[4:]) == ["Two words", "", "m.g"]
  assert ds.relation_names == ("has", "in", "spare")


def test_kgat_test_only_folder(tmp_path):
  ds = read_kgat(write(tmp_path / "k", test_txt="0 1 1 2\n1 0\n"))
  np.testing.assert_array_equal(ds.interactions, [[0, 1], [0, 2], [1, 0]])
  assert ds.test is None and not ds.presplit and len(ds.kg) == 0
  assert ds.notes[0] == "no train.txt: test.txt read as the unsplit interactions"


def test_kgat_write_round_trip(tmp_path):
  ds = read_kgat(write(tmp_path / "k", **KGAT))
  write_kgat(tmp_path / "w", ds.interactions, ds.test, ds.kg)
  again = read_kgat(tmp_path / "w")
  for name in ("interactions", "test", "kg"):
    np.testing.assert_array_equal(getattr(again, name), getattr(ds, name))
  assert (tmp_path / "w" / "train.txt").read_text() == "0 1 2\n2 0 1\n"
  write_kgat(tmp_path / "w2", again.interactions, again.test, again.kg)
  for f in ("train.txt", "test.txt", "kg_final.txt"):
    assert (tmp_path / "w" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes()


@pytest.mark.parametrize("files, match", [
    (dict(), r"k/train\.txt: missing required file"),
    (dict(train_txt=""), r"train\.txt: empty file"),
    (dict(train_txt="\n \n"), r"train\.txt: empty file"),
    (dict(train_txt="0 1\n1 2 x3\n"), r"train\.txt:2: non-integer id 'x3'"),
    (dict(train_txt="0 1\n\n1 2.5\n"), r"train\.txt:3: non-integer id '2\.5'"),
    (dict(train_txt="0 1\n1 -2\n"), r"train\.txt:2: negative id '-2'"),
    (dict(train_txt="0 1\n1 12345678901234567890\n"), r"train\.txt:2: id 1234\d+ out of range"),
    (dict(train_txt="0 1\n", kg_final_txt="0 0 1\n1 0\n"),
     r"kg_final\.txt:2: expected 3 columns, found 2"),
    (dict(train_txt="0 1\n", kg_final_txt="0 0 1\n1 2 0\n",
          relation_list_txt="org_id remap_id\na 0\nb 1\n"),
     r"kg_final\.txt:2: unknown relation 2 \(relation_list\.txt has 2\)"),
    (dict(train_txt="0 1\n3 1\n", user_list_txt="org_id remap_id\na 0\nb 1\n"),
     r"train\.txt:2: user id 3 out of range \[0, 2\) of user_list\.txt"),
    (dict(train_txt="0 1\n", test_txt="0 0\n0 5\n",
          item_list_txt="org_id remap_id freebase_id\na 0 m\nb 1 n\n"),
     r"test\.txt:2: item id 5 out of range \[0, 2\)"),
    (dict(train_txt="0 1\n", kg_final_txt="0 0 9\n", entity_list_txt="org_id remap_id\na 0\nb 1\n"),
     r"kg_final\.txt:1: entity id 9 out of range \[0, 2\) of entity_list\.txt"),
    (dict(train_txt="0 1\n", user_list_txt="org_id remap_id\na 0\nb 0\n"),
     r"user_list\.txt:3: duplicate remap_id 0"),
    (dict(train_txt="0 1\n", user_list_txt="org_id remap_id\na 0\nb x\n"),
     r"user_list\.txt:3: non-integer remap_id 'x'"),
    (dict(train_txt="0 1\n", user_list_txt="org_id remap_id\na 0\nb\n"),
     r"user_list\.txt:3: expected 2 columns, found 1"),
    (dict(train_txt="0 1\n", user_list_txt="id remap\na 0\n"),
     r"user_list\.txt:1: expected header"),
])
def test_kgat_bad_input(tmp_path, files, match):
  with bad(match):
    read_kgat(write(tmp_path / "k", **files))


# --- RecBole --------------------------------------------------------------------------------------

RECBOLE = dict(
    x__inter="user_id:token\titem_id:token\trating:float\n10\t2\t4\n2\t1\t3\n10\t2\t5\n2\t10\t1\n",
    x__link="item_id:token\tentity_id:token\n1\te.a\n10\te.b\n99\te.z\n",
    x__kg="head_id:token\trelation_id:token\ttail_id:token\ne.a\tr1\te.c\ne.c\tr2\te.b\n"
          "e.d\tr1\te.a\ne.a\tr1\te.c\n",
    x__item="item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
            "1\tA Movie\t1995\tDrama Comedy\n2\tB\t\tDrama\n10\tC\t1999\t\n77\tZ\t2000\tWar\n",
    x__user="user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
            "2\t24\tM\ttechnician\t111\n10\t60\tF\tother\t222\n")


def test_recbole_records(tmp_path):
  ds = read_recbole(write(tmp_path / "data", **RECBOLE))
  assert (ds.name, ds.n_users, ds.n_items, ds.n_entities) == ("x", 2, 3, 5)
  assert list(ds.user_ids) == ["2", "10"] and list(ds.item_ids) == ["1", "2", "10"]
  np.testing.assert_array_equal(ds.interactions, [[0, 0], [0, 2], [1, 1]])
  np.testing.assert_array_equal(ds.kg, [[0, 0, 3], [3, 1, 2], [4, 0, 0]])
  assert ds.relation_names == ("r1", "r2")
  assert list(ds.entity_ids) == ["e.a", "2", "e.b", "e.c", "e.d"]
  assert list(ds.item_titles) == ["A Movie", "B", "C"]
  assert facts(ds) == {(0, False, "genre=Drama", 1), (0, False, "genre=Comedy", 1),
                       (1, False, "genre=Drama", 1), (0, False, "year=1995", 1),
                       (2, False, "year=1999", 1), (0, True, "age=18-24", 1),
                       (1, True, "age=56+", 1), (0, True, "gender=M", 1), (1, True, "gender=F", 1),
                       (0, True, "occupation=technician", 1), (1, True, "occupation=other", 1)}
  assert ds.aux.attr_names == ("genre", "year", "age", "gender", "occupation")
  assert "x.inter: 3 (user, item) pairs, dropped 1 duplicates" in ds.notes
  assert "x.link: 2 items linked to KG entities, ignored 1 links of items without interactions" \
      in ds.notes
  assert "x.kg: 3 triples, dropped 1 duplicates" in ds.notes
  assert "x.item: ignored 1 rows of items without interactions" in ds.notes


def test_recbole_benchmark_files(tmp_path):
  head = "user_id:token\titem_id:token\n"
  ds = read_recbole(write(tmp_path / "data", y__train__inter=head + "a\tp\nb\tq\n",
                          y__valid__inter=head + "a\tq\n", y__test__inter=head + "b\tp\nb\tq\n"))
  np.testing.assert_array_equal(ds.interactions, [[0, 0], [1, 1]])
  np.testing.assert_array_equal(ds.valid, [[0, 1]])
  np.testing.assert_array_equal(ds.test, [[1, 0], [1, 1]])
  assert "1 test pairs also in train (kept in test)" in ds.notes


@pytest.mark.parametrize("files, match", [
    (dict(), r"x\.inter: missing required file"),
    (dict(x__inter=""), r"x\.inter: empty file"),
    (dict(x__inter="user_id:token\titem_id:token\n"), r"x\.inter: empty file \(no data rows\)"),
    (dict(x__inter="user_id\titem_id:token\n1\t2\n"),
     r"x\.inter:1: malformed header field 'user_id'"),
    (dict(x__inter="user_id:token\titem_id:int\n1\t2\n"),
     r"x\.inter:1: malformed header field 'item_id:int'"),
    (dict(x__inter="user_id:token\tuser_id:token\n1\t2\n"), r"x\.inter:1: .*appears twice"),
    (dict(x__inter="user_id:token\trating:float\n1\t2\n"), r"x\.inter:1: .*no item_id:token"),
    (dict(x__inter="user_id:token\titem_id:token\n1\t2\n1\t2\t3\n"),
     r"x\.inter:3: expected 2 columns, found 3"),
    (dict(x__inter="user_id:token\titem_id:token\n1\t2\n1\n"),
     r"x\.inter:3: missing value for 'item_id'"),
    (dict(x__inter="user_id:token\titem_id:token\n1\t2\n", x__link=RECBOLE["x__link"] + "2\te.a\n"),
     r"x\.link:5: duplicate entity_id 'e\.a'"),
    (dict(x__inter="user_id:token\titem_id:token\n1\t2\n", x__kg="head_id:token\ttail_id:token\n"),
     r"x\.kg:1: .*no relation_id:token"),
    (dict(x__inter="user_id:token\titem_id:token\n1\t2\n",
          x__user="user_id:token\tage:token\n1\tforty\n"), r"x\.user:2: non-integer age 'forty'"),
])
def test_recbole_bad_input(tmp_path, files, match):
  with bad(match):
    read_recbole(write(tmp_path / "data", **files), name="x")


# --- MovieLens ------------------------------------------------------------------------------------

ML = dict(
    ratings_csv="userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,2.0,2\n2,10,5.0,3\n3,30,3.5,4\n"
                "3,30,4.5,5\n",
    movies_csv='movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n20,Solo (2001),Drama\n'
               "30,NoYear,(no genres listed)\n40,Unrated (1990),Drama\n",
    tags_csv="userId,movieId,tag,timestamp\n1,10,Funny,1\n1,20,funny ,2\n2,10,dark,3\n9,10,x,4\n"
             "2,40,y,5\n",
    genome__scores_csv="movieId,tagId,relevance\n10,1,0.5\n10,2,0.9\n10,3,0.1\n30,1,0.2\n"
                       "30,2,0.2\n30,3,0.7\n99,1,0.9\n",
    genome__tags_csv='"tagId","tag"\n1,a\n2,b\n3,"c, d"\n')


def ml_folder(tmp_path, **changes) -> pathlib.Path:
  files = {k.replace("genome__", "genome-"): v for k, v in {**ML, **changes}.items()
           if v is not None}
  folder = tmp_path / "ml"
  folder.mkdir(exist_ok=True)
  for key, text in files.items():
    (folder / key.replace("_csv", ".csv")).write_text(text)
  return folder


def test_movielens_csv_records(tmp_path):
  ds = read_movielens(ml_folder(tmp_path), genome_top_k=2)
  assert (ds.n_users, ds.n_items, ds.n_entities) == (3, 3, 8)
  np.testing.assert_array_equal(ds.interactions, [[0, 0], [0, 1], [1, 0], [2, 2]])
  np.testing.assert_array_equal(ds.kg, [[0, 0, 3], [0, 0, 4], [1, 0, 5], [0, 1, 6], [1, 1, 7]])
  assert ds.relation_names == ("genre", "year")
  assert list(ds.entity_ids) == ["10", "20", "30", "genre=Action", "genre=Crime", "genre=Drama",
                                 "year=1995", "year=2001"]
  assert list(ds.item_titles) == ["Heat, The (1995)", "Solo (2001)", "NoYear"]
  assert facts(ds) == {(0, False, "genome=b", 0.9), (0, False, "genome=a", 0.5),
                       (2, False, "genome=c, d", 0.7), (2, False, "genome=a", 0.2),
                       (0, True, "user_tag=funny", 2), (1, True, "user_tag=dark", 1),
                       (1, True, "user_tag=y", 1), (0, False, "tag=funny", 1),
                       (0, False, "tag=dark", 1), (0, False, "tag=x", 1),
                       (1, False, "tag=funny", 1)}
  assert "4 (user, item) pairs from 3 users and 3 movies, dropped 1 duplicates" in ds.notes
  assert "ignored 1 movies without (kept) ratings" in ds.notes
  assert "genome-scores.csv: ignored 1 rows of movies without (kept) ratings" in ds.notes
  assert "user_tag: ignored 1 applications of users without (kept) ratings" in ds.notes


def test_movielens_min_rating_and_freebase(tmp_path):
  folder = ml_folder(tmp_path, tags_csv=None, genome__scores_csv=None)
  (folder / "links.txt").write_text("10\tm.a\n30\tm.c\n20\tm.s\n")
  (folder / "fb.txt").write_text("m.a\tr\tm.b\nm.b r2  m.c\nm.s\tr\tm.b\nm.a\tr\tm.b\n")
  ds = read_movielens(folder, min_rating=3.5, link_file=folder / "links.txt",
                      freebase_triples=folder / "fb.txt")
  assert (ds.n_users, ds.n_items) == (3, 2)
  np.testing.assert_array_equal(ds.interactions, [[0, 0], [1, 0], [2, 1]])
  assert ds.relation_names == ("genre", "year", "r", "r2")
  assert list(ds.entity_ids) == ["m.a", "m.c", "genre=Action", "genre=Crime", "year=1995", "m.b",
                                 "m.s"]
  np.testing.assert_array_equal(ds.kg[-3:], [[0, 2, 5], [5, 3, 1], [6, 2, 5]])
  assert "kept 4 of 5 ratings >= 3.5" in ds.notes
  assert "links.txt: 2 items linked to Freebase, ignored 1 links of movies without (kept) " \
         "ratings" in ds.notes
  assert "fb.txt: 3 triples, dropped 1 duplicates" in ds.notes


def test_movielens_100k_and_1m_layouts(tmp_path):
  flags = lambda *on: "|".join("1" if k in on else "0" for k in range(19))
  k100 = write(tmp_path / "k100", u__data="1\t5\t4\t9\n2\t5\t3\t9\n2\t7\t1\t9\n",
               u__item=f"5|Five (1995)|01-Jan-1995||http://x|{flags(1, 5)}\n"
                       f"7|Seven|||http://y|{flags(0)}\n",
               u__user="1|24|M|technician|85711\n2|50|F|other|94043\n")
  ds = read_movielens(k100)
  np.testing.assert_array_equal(ds.kg, [[0, 0, 2], [0, 0, 3], [0, 1, 4]])
  assert list(ds.entity_ids[2:]) == ["genre=Action", "genre=Comedy", "year=1995"]
  assert facts(ds) == {(0, True, "age=18-24", 1), (1, True, "age=50-55", 1),
                       (0, True, "gender=M", 1), (1, True, "gender=F", 1),
                       (0, True, "occupation=technician", 1), (1, True, "occupation=other", 1)}
  m1 = write(tmp_path / "m1", ratings__dat="1::5::4::9\n2::7::5::9\n",
             movies__dat="5::Five (1995)::Action|Comedy\n7::Sept (2000)::Drama\n",
             users__dat="1::F::1::10::48067\n2::M::56::16::70072\n")
  ds = read_movielens(m1)
  assert list(ds.entity_ids[2:]) == ["genre=Action", "genre=Comedy", "genre=Drama", "year=1995",
                                     "year=2000"]
  assert facts(ds) == {(0, True, "age=under 18", 1), (1, True, "age=56+", 1),
                       (0, True, "gender=F", 1), (1, True, "gender=M", 1),
                       (0, True, "occupation=K-12 student", 1),
                       (1, True, "occupation=self-employed", 1)}


@pytest.mark.parametrize("changes, match", [
    (dict(ratings_csv=None), r"ml/ratings\.csv: missing required file"),
    (dict(ratings_csv=""), r"ratings\.csv: empty file"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n"), r"ratings\.csv: empty file"),
    (dict(ratings_csv="user,movie,rating,timestamp\n1,2,3,4\n"),
     r"ratings\.csv:1: expected header 'userId,movieId,rating,timestamp'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\nx,2,3,4\n"),
     r"ratings\.csv:3: non-integer id 'x' in column 'userId'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,2.5,3,4\n"),
     r"ratings\.csv:3: non-integer id '2\.5' in column 'movieId'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,-2,3,4\n"),
     r"ratings\.csv:3: negative id -2 in column 'movieId'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,99999999999999999999,3,4\n"),
     r"ratings\.csv:3: id 9+ out of range in column 'movieId'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3,4,5\n"),
     r"ratings\.csv:3: expected 4 columns, found 5"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4,5\n1,2,3,4\n"),
     r"ratings\.csv:2: expected 4 columns, found more"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3\n"),
     r"ratings\.csv:3: missing value for 'timestamp' \(expected 4 columns\)"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n\n1,2,3,4\n"),
     r"ratings\.csv:3: missing value for 'userId'"),
    (dict(ratings_csv="userId,movieId,rating,timestamp\n1,2,3,4\n1,2,good,4\n"),
     r"ratings\.csv:3: non-numeric value 'good' in column 'rating'"),
    (dict(genome__scores_csv="movieId,tagId,relevance\n10,1,0.5\n10,7,0.5\n"),
     r"genome-scores\.csv:3: tagId 7 not in genome-tags\.csv"),
    (dict(genome__scores_csv="movieId,tagId,relevance\n10,1,1.5\n"),
     r"genome-scores\.csv:2: relevance 1\.5 outside \[0, 1\]"),
    (dict(tags_csv="userId,movieId,tag,timestamp\n1,10,a,1\n1,10,b\n"),
     r"tags\.csv:3: missing value for 'timestamp'"),
])
def test_movielens_bad_input(tmp_path, changes, match):
  with bad(match):
    read_movielens(ml_folder(tmp_path, **changes))


def test_movielens_bad_dat_and_links(tmp_path):
  with bad(r"ratings\.dat:2: expected 4 columns, found 5"):
    read_movielens(write(tmp_path / "m1", ratings__dat="1::5::4::9\n2::7::5::9::1\n"))
  with bad(r"users\.dat:1: unknown occupation code 21"):
    read_movielens(write(tmp_path / "m2", ratings__dat="1::5::4::9\n",
                         users__dat="1::F::1::21::4\n"))
  folder = ml_folder(tmp_path)
  (folder / "links.txt").write_text("10\tm.a\n30\tm.a\n")
  (folder / "fb.txt").write_text("m.a\tr\tm.b\n")
  with bad(r"links\.txt:2: entity m\.a linked twice"):
    read_movielens(folder, link_file=folder / "links.txt", freebase_triples=folder / "fb.txt")
  with bad(r"links\.txt: link_file and freebase_triples must be given together"):
    read_movielens(folder, link_file=folder / "links.txt")
  (folder / "fb.txt").write_text("m.a\tr\tm.b\nm.b\tr\n")
  (folder / "links.txt").write_text("10\tm.a\n")
  with bad(r"fb\.txt:2: expected 3 columns|fb\.txt:2: missing value"):
    read_movielens(folder, link_file=folder / "links.txt", freebase_triples=folder / "fb.txt")


def test_helpers():
  codes, uniques = io.dense_codes(np.array([7, 3, 7, 10**12]))
  np.testing.assert_array_equal(codes, [1, 0, 1, 2])
  np.testing.assert_array_equal(uniques, [3, 7, 10**12])
  np.testing.assert_array_equal(io.lookup(np.array([2, 5]), np.array([5, 1, 2, 9])), [1, -1, 0, -1])
  assert list(io.age_bucket(np.array([1, 17, 18, 24, 25, 49, 50, 56, 80]))) == [
      "under 18", "under 18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+"]


# --- real data ------------------------------------------------------------------------------------

real = pytest.mark.realdata


@real
@pytest.mark.parametrize("name, counts", [
    ("ml-100k-kg", (943, 1682, 80_000, 20_000, 91_631, 34_712, 24)),
    ("last-fm-s", (23_566, 48_123, 337_178, 86_457, 464_567, 106_389, 9)),
])
def test_real_bench_kgat(bench_dir, tmp_path, name, counts):
  ds = read_kgat(bench_dir(name))
  assert (ds.n_users, ds.n_items, len(ds.interactions), len(ds.test), len(ds.kg), ds.n_entities,
          ds.n_relations) == counts
  write_kgat(tmp_path, ds.interactions, ds.test, ds.kg)
  for f in ("train.txt", "test.txt", "kg_final.txt"):
    assert (tmp_path / f).read_bytes() == (bench_dir(name) / f).read_bytes()


@real
def test_real_kgat_last_fm(raw_dir, bench_dir):
  ds = read_kgat(raw_dir("kgat-last-fm"))
  assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (23_566, 48_123, 106_389, 9)
  assert len(ds.interactions) == 423_635 and not ds.presplit
  assert "test.txt: 423635 (user, item) pairs, dropped 192701 duplicates" in ds.notes  # of 616,336
  assert ds.relation_names[0] == "http://rdf.freebase.com/ns/common.topic.notable_types"
  assert ds.entity_ids[0] == "m.0f7jpbw" and ds.item_ids[0] == "152949"
  bench = read_kgat(bench_dir("last-fm-s"))
  pairs = np.r_[bench.interactions, bench.test]
  np.testing.assert_array_equal(ds.interactions, pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])
  np.testing.assert_array_equal(ds.kg, bench.kg)


@real
def test_real_kgat_amazon_book(raw_dir):
  ds = read_kgat(raw_dir("kgat-amazon-book"))
  assert (ds.n_users, ds.n_items) == (70_679, 24_915)
  assert len(ds.interactions) + len(ds.test) == 846_434
  assert len(ds.kg) == 0 and ds.n_relations == 39 and ds.n_entities == len(ds.entity_ids)
  assert ds.item_ids[0] == "0553092626"


@real
def test_real_recbole_ml_100k(raw_dir, bench_dir):
  ds = read_recbole(raw_dir("recbole-ml-100k"))
  assert (ds.name, ds.n_users, ds.n_items, len(ds.interactions), len(ds.kg), ds.n_relations,
          ds.n_entities) == ("ml-100k", 943, 1682, 100_000, 91_631, 24, 34_712)
  assert "ml-100k.link: 1598 items linked to KG entities, ignored 0 links of items without " \
         "interactions" in ds.notes
  assert ds.aux.attr_names == ("genre", "year", "age", "gender", "occupation")
  assert ds.item_titles[0] == "Toy Story" and ds.entity_ids[0] == "m.0dyb1"
  bench = read_kgat(bench_dir("ml-100k-kg"))   # derived from these files: same id space
  np.testing.assert_array_equal(ds.kg, bench.kg)
  pairs = np.r_[bench.interactions, bench.test]
  np.testing.assert_array_equal(ds.interactions, pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])


@real
def test_real_movielens_100k(raw_dir):
  ds = read_movielens(raw_dir("ml-100k"))
  assert (ds.n_users, ds.n_items, len(ds.interactions)) == (943, 1682, 100_000)
  assert ds.relation_names == ("genre", "year") and ds.aux.attr_names == ("age", "gender",
                                                                         "occupation")
  assert len(ds.aux) == 3 * 943 and ds.item_titles[0] == "Toy Story (1995)"


@real
def test_real_movielens_latest_small(raw_dir):
  ds = read_movielens(raw_dir("ml-latest-small"))
  assert (ds.n_users, ds.n_items, len(ds.interactions)) == (610, 9_724, 100_836)
  assert "tags: 3683 applications, 0 empty tags left out" in ds.notes
  assert ds.aux.attr_names == ("user_tag", "tag")
  user_tags = ds.aux.owner_is_user
  assert ds.aux.weight[user_tags].sum() == 3_683


@real
def test_real_movielens_20m_layout(raw_dir, tmp_path):
  """ML-20M's file layout: latest-small ratings and tags with ML-20M movies, links, genome tags and
  the cut-short genome scores (symlinked, not copied), plus KB4Rec links."""
  small, m20, part = raw_dir("ml-latest-small"), raw_dir("ml-20m"), raw_dir("ml-20m-partial-genome")
  for target, link in ((small / "ratings.csv", "ratings.csv"), (small / "tags.csv", "tags.csv"),
                       (m20 / "movies.csv", "movies.csv"), (m20 / "links.csv", "links.csv"),
                       (m20 / "genome-tags.csv", "genome-tags.csv"),
                       (part / "genome_scores_prefix.csv", "genome-scores.csv")):
    (tmp_path / link).symlink_to(target)
  (tmp_path / "fb.txt").write_text("m.0dyb1\tfilm.film.directed_by\tm.0jt90f5\n"
                                   "m.0jt90f5\tpeople.person.nationality\tm.09c7w0\n")
  ds = read_movielens(tmp_path, link_file=raw_dir("kb4rec") / "ml2fb.txt",
                      freebase_triples=tmp_path / "fb.txt")
  assert (ds.n_users, ds.n_items, len(ds.interactions)) == (610, 9_724, 100_836)
  assert ds.relation_names == ("genre", "year", "film.film.directed_by",
                               "people.person.nationality")
  assert ds.entity_ids[0] == "m.0dyb1" and list(ds.entity_ids[-2:]) == ["m.0jt90f5", "m.09c7w0"]
  a = ds.aux
  genome = a.node_attr[a.node] == a.attr_names.index("genome")
  per_movie = np.bincount(a.owner[genome])
  assert per_movie.max() == 10 and 100 < (per_movie > 0).sum() <= 147
  toy_story = np.argsort(-a.weight[genome & (a.owner == 0)])
  assert a.node_names[a.node[genome & (a.owner == 0)][toy_story[0]]] == "genome=toys"
  (tmp_path / "genome-tags.csv").unlink()   # the Kaggle copy of the tag names, quoted
  (tmp_path / "genome-tags.csv").symlink_to(part / "genome_tags_kaggle.csv")
  again = read_movielens(tmp_path)
  np.testing.assert_array_equal(again.aux.node_names, ds.aux.node_names)


def test_read_tags_of_both_release_formats(tmp_path):
  assert movielens.read_tags(tmp_path) is None
  (tmp_path / "tags.dat").write_text("5::30::Dark::1\n6::10::funny::2\n", encoding="latin-1")
  dat = movielens.read_tags(tmp_path)
  assert dat.values.tolist() == [[5, 30, "Dark"], [6, 10, "funny"]]
  (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n7,30,x,1\n")
  assert movielens.read_tags(tmp_path).values.tolist() == [[7, 30, "x"]]   # csv first
  (tmp_path / "tags.csv").write_text("userId,movieId,tag,timestamp\n7,abc,x,1\n")
  with pytest.raises(DataError, match="tags.csv"):
    movielens.read_tags(tmp_path)
