-- Where an imported model came from (ONNX or Keras): JSON of formats::source::Source,
-- NULL for models kiln defined itself. Derived models inherit their parent's.
ALTER TABLE models ADD COLUMN source TEXT;
