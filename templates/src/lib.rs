//! Askama templates: the HTML report and generated interface code.
