"""The Responses API's logic: the model/tool loop, the store, the scheduler."""
